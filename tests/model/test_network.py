"""The network as a whole: spec, shapes, receptive fields, gradients, learning, weights I/O."""

import json

import numpy as np
import pytest

import model
from model.network import Network
from model.optim import SGD

TINY_SPEC = {
    "name": "tiny",
    "input": [8, 8, 2],
    "classes": ["a", "b", "c"],
    "layers": [
        {"kind": "conv", "filters": 3, "size": 3, "stride": 1, "pad": 1},
        {"kind": "relu"},
        {"kind": "pool", "size": 2, "stride": 2},
        {"kind": "conv", "filters": 4, "size": 3, "stride": 2, "pad": 1},
        {"kind": "relu"},
        {"kind": "fc", "units": 3},
        {"kind": "softmax"},
    ],
}


def test_cifar10_layers_match_design():
    net = model.build("cifar10")
    shapes = [tuple(layer.output_shape) for layer in net.layers]
    assert shapes[0] == (32, 32, 32) and shapes[4] == (16, 16, 32)
    assert shapes[9] == (8, 8, 64) and shapes[14] == (4, 4, 128)
    assert shapes[-2:] == [(1, 1, 10), (1, 1, 10)]
    assert [layer.kind for layer in net.layers[:5]] == ["conv", "relu", "conv", "relu", "pool"]
    assert net.layers[0].param_count == 32 * 3 * 9 + 32
    assert net.layers[15].param_count == 10 * 2048 + 10
    assert repr(net.layers[0]) == "CONV 3x3x32 -> 32x32x32"


def test_receptive_fields_known_answers():
    net = model.build("cifar10")
    fields = [net.receptive_field(i) for i in range(len(net.layers))]
    # conv3 -> 3, conv3 -> 5, pool2 -> 6 (jump 2), conv3 -> 10, conv3 -> 14, pool2 -> 16 ...
    assert (fields[0].size, fields[0].jump, fields[0].start) == (3, 1, 0.0)
    assert (fields[2].size, fields[2].jump) == (5, 1)
    assert (fields[4].size, fields[4].jump, fields[4].start) == (6, 2, 0.5)
    assert (fields[5].size, fields[5].jump) == (10, 2)
    assert (fields[7].size, fields[7].jump) == (14, 2)
    assert (fields[9].size, fields[9].jump, fields[9].start) == (16, 4, 1.5)
    # Neuron (0, 0) of pool1 sees input rows/cols 0..5 less the padding: 0..3 clipped.
    assert fields[4].box(0, 0, 32, 32) == (0, 0, 3, 3)
    assert fields[0].box(5, 7, 32, 32) == (4, 6, 6, 8)
    assert net.describe()[4]["receptive_field"] == {"size": 6, "jump": 2, "start": 0.5}


def test_forward_iter_yields_every_layer_in_order():
    net = model.build(TINY_SPEC)
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 2)).astype(np.float32)
    streamed = list(net.forward_iter(x))
    assert [layer.name for layer, _ in streamed] == [layer.name for layer in net.layers]
    volumes = net.forward(x)
    for (layer, volume), again in zip(streamed, volumes, strict=True):
        assert volume.shape == (2, *layer.output_shape)
        assert volume.dtype == np.float32
        np.testing.assert_array_equal(volume, again)
    probabilities = net.predict(x)
    np.testing.assert_allclose(probabilities, volumes[-1].reshape(2, 3), rtol=1e-6)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-6)


def test_whole_network_gradient_check():
    net = model.build(TINY_SPEC, seed=1).astype(np.float64)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 8, 8, 2))
    labels = np.array([0, 2, 1])
    # A handful of entries per parameter: the full check takes too long.
    check_network_gradients(net, x, labels, atol=1e-5, rtol=1e-4, per_parameter=7)


def check_network_gradients(
    net: model.Network,
    x: np.ndarray,
    labels: np.ndarray,
    atol: float,
    rtol: float,
    per_parameter: int | None = None,
) -> None:
    """The loss's gradient against central differences, for every entry of every parameter
    (or about `per_parameter` entries of each, spread over it)."""
    _, grads = net.loss(x, labels)
    h = 1e-6
    for name, value in net.state_dict().items():
        indices = list(np.ndindex(value.shape))
        if per_parameter is not None:
            indices = indices[:: max(1, value.size // per_parameter)]
        for index in indices:
            old = value[index]
            value[index] = old + h
            plus = net.loss(x, labels)[0]
            value[index] = old - h
            minus = net.loss(x, labels)[0]
            value[index] = old
            numeric = (plus - minus) / (2 * h)
            assert abs(numeric - grads[name][index]) < atol + rtol * abs(numeric), (name, index)


def test_conv_weight_matrices_stay_views_through_loading_and_training():
    # The forward pass reads each conv weight as an im2col matrix; it must not be copied
    # every time, whatever filled the weights.
    net = model.load("cifar10")
    optimizer = SGD(net.state_dict(), lr=0.01, momentum=0.9)
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype(np.float32)
    optimizer.step(net.loss(x, np.array([1, 2]))[1])
    for network in (net, net.astype(np.float64)):
        for layer in network.layers:
            if layer.kind == "conv":
                assert np.shares_memory(layer._weight_matrix(), layer.params["weight"])


def test_tiny_network_overfits_twenty_images():
    net = model.build(TINY_SPEC, seed=5)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((20, 8, 8, 2)).astype(np.float32)
    labels = rng.integers(0, 3, 20)
    optimizer = SGD(net.state_dict(), lr=0.05, momentum=0.9)
    first = net.loss(x, labels)[0]
    for _ in range(150):
        loss, grads = net.loss(x, labels)
        optimizer.step(grads)
    assert loss < 0.1 * first
    assert (net.predict(x).argmax(axis=1) == labels).mean() == 1.0


@pytest.mark.parametrize(
    "bad, expected",
    [
        (np.zeros((8, 8, 2), np.float32), "rank 3"),
        (np.zeros((1, 9, 8, 2), np.float32), r"shape \(1, 9, 8, 2\)"),
        (np.zeros((1, 8, 8, 3), np.float32), r"\(N, 8, 8, 2\)"),
        (np.zeros((1, 8, 8, 2), np.float64), "dtype float64"),
        (np.full((1, 8, 8, 2), np.nan, np.float32), "NaN"),
        ([[1.0]], "NumPy array"),
    ],
)
def test_bad_input_names_what_was_expected(bad, expected):
    net = model.build(TINY_SPEC)
    with pytest.raises(ValueError, match=expected):
        net.forward(bad)
    with pytest.raises(ValueError, match=expected):
        net.predict(bad)


def test_bad_specs_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="unknown layer kind 'dense'"):
        Network({**TINY_SPEC, "layers": [{"kind": "dense"}]})
    with pytest.raises(ValueError, match="repeated"):
        Network(
            {**TINY_SPEC, "layers": [{"kind": "relu", "name": "x"}, {"kind": "relu", "name": "x"}]}
        )
    with pytest.raises(ValueError, match="bad options"):
        Network({**TINY_SPEC, "layers": [{"kind": "conv", "filterz": 3}]})
    with pytest.raises(ValueError, match="names 3 classes"):
        Network({**TINY_SPEC, "layers": [{"kind": "fc", "units": 4}]})
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        model.build("nope")


def test_weights_round_trip_and_card(tmp_path):
    net = model.build(TINY_SPEC, seed=7)
    path = model.save(net, tmp_path / "tiny", card={"test_accuracy": 0.5})
    assert path.suffix == ".npz"
    with np.load(path, allow_pickle=False) as arrays:
        assert set(arrays.files) == set(net.state_dict())
    card = json.loads((tmp_path / "tiny.json").read_text())
    assert card["test_accuracy"] == 0.5 and card["spec"]["name"] == "tiny"
    again = model.load(path)
    assert again.card["test_accuracy"] == 0.5
    x = np.random.default_rng(8).standard_normal((2, 8, 8, 2)).astype(np.float32)
    np.testing.assert_array_equal(again.predict(x), net.predict(x))


def test_loading_mismatched_weights_names_the_layer(tmp_path):
    net = model.build(TINY_SPEC)
    state = dict(net.state_dict())
    state["conv2.weight"] = np.zeros((4, 3, 5, 5), np.float32)
    np.savez(tmp_path / "bad.npz", **state)
    with pytest.raises(ValueError, match=r"layer conv2: conv2.weight has shape \(4, 3, 5, 5\)"):
        model.load_weights(model.build(TINY_SPEC), tmp_path / "bad.npz")
    del state["conv2.weight"]
    np.savez(tmp_path / "missing.npz", **state)
    with pytest.raises(ValueError, match=r"missing \['conv2.weight'\]"):
        model.load_weights(model.build(TINY_SPEC), tmp_path / "missing.npz")


def test_missing_weights_are_a_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no trained weights"):
        model.load(tmp_path / "nothing.npz")


def test_he_initialisation_scale():
    net = model.build("cifar10", seed=0)
    weight = net.state_dict()["conv4.weight"]  # fan in 64 * 9
    assert weight.std() == pytest.approx(np.sqrt(2 / 576), rel=0.05)
    assert not net.state_dict()["conv4.bias"].any()
