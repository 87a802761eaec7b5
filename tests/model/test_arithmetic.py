"""model/arithmetic.py on small hand-made layers: every part against a loop written here, and
the layer's own float32 number within the stated rounding bound."""

import itertools

import numpy as np
import pytest

from model import arithmetic
from model.layers import FC, Conv, Layer, MaxPool, ReLU, Softmax


def random_conv(rng, shape, filters, size, stride, pad) -> Conv:
    layer = Conv("conv", shape, filters, size, stride, pad)
    layer.params["weight"][...] = rng.standard_normal(layer.params["weight"].shape)
    layer.params["bias"][...] = rng.standard_normal(filters)
    return layer


@pytest.mark.parametrize("size, stride, pad", [(3, 1, 1), (5, 2, 2), (2, 3, 0), (3, 2, 0)])
def test_conv_parts_are_the_loops_and_the_layers_number_is_within_the_bound(size, stride, pad):
    rng = np.random.default_rng(size * 10 + stride)
    before = rng.standard_normal((9, 7, 4)).astype(np.float32)
    layer = random_conv(rng, before.shape, 3, size, stride, pad)
    out = layer.forward(before[None])[0]
    weight = layer.params["weight"]
    ho, wo, f = out.shape
    for row, col, depth in itertools.product(range(ho), range(wo), range(f)):
        parts = arithmetic.neuron(layer, before, row, col, depth)
        r0, c0 = row * stride - pad, col * stride - pad
        assert parts["rows"] == [r0, r0 + size] and parts["cols"] == [c0, c0 + size]
        sums = np.zeros(4)
        for i, j, c in itertools.product(range(size), range(size), range(4)):
            r, cc = r0 + i, c0 + j
            x = before[r, cc, c] if 0 <= r < 9 and 0 <= cc < 7 else 0.0
            assert parts["window"][i, j, c] == x
            assert parts["weights"][i, j, c] == weight[depth, c, i, j]
            sums[c] += float(x) * float(weight[depth, c, i, j])
        assert parts["channel_sums"] == pytest.approx(sums, rel=1e-12, abs=1e-12)
        assert parts["value"] == pytest.approx(layer.params["bias"][depth] + sums.sum(), abs=1e-12)
        assert abs(float(out[row, col, depth]) - parts["value"]) <= parts["tolerance"]


def test_relu_and_pool_are_exact_and_the_pool_picks_the_first_of_a_tie():
    before = np.array([[[1.0], [3.0]], [[3.0], [-2.0]]], np.float32)
    relu = ReLU("relu", before.shape)
    assert arithmetic.neuron(relu, before, 1, 1, 0) == {
        "kind": "relu",
        "rows": [1, 2],
        "cols": [1, 2],
        "input_value": -2.0,
        "value": 0.0,
        "tolerance": 0.0,
    }
    parts = arithmetic.neuron(MaxPool("pool", before.shape, 2), before, 0, 0, 0)
    assert parts["argmax"] == [0, 1] and parts["value"] == 3.0
    assert parts["window"].tolist() == [[1.0, 3.0], [3.0, -2.0]]


def test_fc_terms_follow_the_depth_major_flatten():
    rng = np.random.default_rng(1)
    before = rng.standard_normal((2, 3, 4)).astype(np.float32)
    layer = FC("fc", before.shape, 5)
    layer.params["weight"][...] = rng.standard_normal((5, 24))
    out = layer.forward(before[None])[0, 0, 0]
    for depth in range(5):
        parts = arithmetic.neuron(layer, before, 0, 0, depth)
        for index, term in enumerate(parts["terms"]):
            d, rest = divmod(index, 6)
            r, c = divmod(rest, 3)
            assert term == float(before[r, c, d]) * float(layer.params["weight"][depth, index])
        assert abs(out[depth] - parts["value"]) <= parts["tolerance"]
        magnitudes = [abs(t["term"]) for t in parts["top"]]
        assert magnitudes == sorted(magnitudes, reverse=True)
        assert magnitudes[0] == np.abs(parts["terms"]).max()
        for top in parts["top"]:
            r, c, d = top["position"]
            assert top["input"] == before[r, c, d]


def test_softmax_shows_plain_exponentials_and_shifts_only_when_they_overflow():
    small = np.array([[[1.0, 2.0, -3.0]]], np.float32)
    layer = Softmax("softmax", small.shape)
    parts = arithmetic.neuron(layer, small, 0, 0, 1)
    assert parts["shift"] == 0 and parts["exps"][1] == pytest.approx(np.exp(2.0), rel=1e-15)
    assert abs(layer.forward(small[None])[0, 0, 0, 1] - parts["value"]) <= parts["tolerance"]
    huge = np.array([[[800.0, 799.0, 0.0]]], np.float32)
    parts = arithmetic.neuron(layer, huge, 0, 0, 0)
    assert parts["shift"] == 800.0 and np.isfinite(parts["exps"]).all()
    assert parts["value"] == pytest.approx(1 / (1 + np.exp(-1.0)), rel=1e-12)


def test_a_position_outside_the_layer_an_unknown_kind_or_a_wrong_input_are_refused():
    before = np.zeros((4, 4, 2), np.float32)
    pool = MaxPool("pool", before.shape, 2)
    with pytest.raises(IndexError):
        arithmetic.neuron(pool, before, 2, 0, 0)
    with pytest.raises(IndexError):
        arithmetic.neuron(pool, before, 0, 0, -1)
    with pytest.raises(ValueError, match="reads a"):
        arithmetic.neuron(pool, np.zeros((4, 4, 3), np.float32), 0, 0, 0)

    class Odd(Layer):
        kind = "odd"

    with pytest.raises(arithmetic.NotExplained, match="odd layer"):
        arithmetic.neuron(Odd("odd1", before.shape), before, 0, 0, 0)
