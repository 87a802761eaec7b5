"""Weights move between ConvScope and a PyTorch nn.Sequential of the same layers.

The reference file was made by PyTorch itself (scripts/make_torch_reference.py), so these
tests check against torch without needing it installed.
"""

import json
from pathlib import Path

import numpy as np
import pytest

import model
from model.interop import from_torch, to_torch, torch_source

REFERENCE = Path(__file__).parent / "data" / "torch_reference.npz"


@pytest.fixture(scope="module")
def reference():
    with np.load(REFERENCE, allow_pickle=False) as saved:
        return {key: saved[key] for key in saved.files}


def test_torch_weights_give_torchs_volumes(reference):
    net = model.Network(json.loads(str(reference["spec"])))
    torch_state = {k[len("torch.") :]: v for k, v in reference.items() if k.startswith("torch.")}
    net.load_state_dict(from_torch(net, torch_state))
    volumes = net.forward(reference["input"])
    assert len(volumes) == len(net.layers)
    for i, volume in enumerate(volumes):
        np.testing.assert_allclose(volume, reference[f"output.{i}"], rtol=1e-5, atol=1e-5)


def test_export_names_match_the_sequential(reference):
    net = model.Network(json.loads(str(reference["spec"])))
    torch_keys = {k[len("torch.") :] for k in reference if k.startswith("torch.")}
    assert set(to_torch(net)) == torch_keys
    assert "nn.Flatten()" in torch_source(net)
    assert torch_source(net).count("nn.Conv2d") == 2


def test_round_trip_through_torch_names():
    net = model.build("cifar10", seed=1)
    again = model.build("cifar10", seed=2)
    again.load_state_dict(from_torch(again, to_torch(net)))
    for name, value in net.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[name], value)


def test_a_different_torch_model_is_refused():
    net = model.build("mnist")
    with pytest.raises(ValueError, match="modules with parameters"):
        from_torch(net, {"0.weight": np.zeros((1, 1, 1, 1)), "0.bias": np.zeros(1)})


def general_net(seed: int = 0) -> model.Network:
    """Every kind an imported network brings, with random parameters."""
    spec = {
        "input": [12, 12, 3],
        "layers": [
            {
                "kind": "conv2d",
                "filters": 4,
                "kernel": [3, 5],
                "stride": [2, 1],
                "pads": [1, 2, 1, 2],
            },
            {"kind": "batchnorm", "eps": 1e-3},
            {"kind": "leakyrelu", "alpha": 0.1},
            {"kind": "conv2d", "filters": 8, "kernel": [3, 3], "pads": [0, 1, 1, 0], "groups": 4},
            {"kind": "sigmoid"},
            {"kind": "maxpool", "kernel": [2, 2], "pads": [0, 0, 1, 1], "ceil_mode": True},
            {"kind": "tanh"},
            {"kind": "avgpool", "kernel": [3, 3], "stride": [1, 1], "pads": 1},
            {"kind": "conv2d", "filters": 6, "kernel": [3, 3], "dilation": [2, 2], "pads": 2},
            {"kind": "gap"},
            {"kind": "flatten"},
            {"kind": "fc", "units": 5},
            {"kind": "logsoftmax"},
        ],
    }
    net = model.Network(spec)
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        for value in layer.params.values():
            value[...] = rng.uniform(0.5, 1.5, value.shape)
    return net


def test_the_imported_kinds_become_their_pytorch_modules():
    assert torch_source(general_net()) == (
        "nn.Sequential(\n"
        "    nn.Conv2d(3, 4, (3, 5), stride=(2, 1), padding=(1, 2), dilation=1),\n"
        "    nn.BatchNorm2d(4, eps=0.001),\n"
        "    nn.LeakyReLU(0.1),\n"
        "    nn.ZeroPad2d((1, 0, 0, 1)),\n"
        "    nn.Conv2d(4, 8, 3, stride=1, padding=0, dilation=1, groups=4),\n"
        "    nn.Sigmoid(),\n"
        '    nn.ConstantPad2d((0, 1, 0, 1), float("-inf")),\n'
        "    nn.MaxPool2d(2, stride=2, padding=0, ceil_mode=True),\n"
        "    nn.Tanh(),\n"
        "    nn.AvgPool2d(3, stride=1, padding=1, ceil_mode=False, count_include_pad=False),\n"
        "    nn.Conv2d(8, 6, 3, stride=1, padding=2, dilation=2),\n"
        "    nn.AdaptiveAvgPool2d(1),\n"
        "    nn.Flatten(),\n"
        "    nn.Flatten(),\n"
        "    nn.Linear(6, 5),\n"
        "    nn.LogSoftmax(dim=1),\n"
        ")"
    )


def test_the_imported_kinds_state_dict_keys_follow_the_module_indices_and_round_trip():
    net = general_net(seed=1)
    state = to_torch(net)
    modules = torch_source(net).splitlines()[1:-1]
    prefixes = {key.split(".")[0] for key in state}
    # Every key names a module that holds parameters, and every such module has keys.
    holders = {
        str(i)
        for i, line in enumerate(modules)
        if "Conv2d(" in line or "Norm" in line or "Linear" in line
    }
    assert prefixes == holders == {"0", "1", "4", "10", "14"}
    assert sorted(k for k in state if k.startswith("1.")) == [
        "1.bias",
        "1.num_batches_tracked",
        "1.running_mean",
        "1.running_var",
        "1.weight",
    ]
    assert state["4.weight"].shape == (8, 1, 3, 3) and state["14.weight"].shape == (5, 6)
    again = general_net(seed=2)
    again.load_state_dict(from_torch(again, state))
    for name, value in net.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[name], value)


def test_an_average_pool_pytorch_cannot_express_is_refused():
    net = model.Network(
        {
            "input": [6, 6, 1],
            "layers": [{"kind": "avgpool", "kernel": [2, 2], "pads": [1, 1, 0, 0]}],
        }
    )
    with pytest.raises(ValueError, match="has no PyTorch module"):
        torch_source(net)
