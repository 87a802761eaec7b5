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
