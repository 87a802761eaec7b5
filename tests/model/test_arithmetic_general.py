"""model/arithmetic.py on the imported networks' kinds (model/extra_layers.py): every part
against a loop or formula written here, and each layer's own float32 number within the
stated bound, on random inputs at every position (or random ones where there are many)."""

import itertools
import math

import numpy as np
import pytest

from model import arithmetic
from model.extra_layers import (
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Flatten,
    GlobalAvgPool,
    LeakyReLU,
    LogSoftmax,
    Pool2D,
    Sigmoid,
    Tanh,
)


def randomised(layer, rng):
    for value in layer.params.values():
        value[...] = rng.standard_normal(value.shape)
    return layer


def check_within_bound(layer, before, positions):
    """Each neuron's recomputed value lies within its tolerance of the layer's float32
    number, and the tolerance is a float32-sized one (not a blanket that passes anything)."""
    out = layer.forward(before[None])[0]
    for row, col, depth in positions:
        parts = arithmetic.neuron(layer, before, row, col, depth)
        assert parts["kind"] == layer.kind
        stored = float(out[row, col, depth])
        assert abs(stored - parts["value"]) <= parts["tolerance"], (row, col, depth)
        assert parts["tolerance"] <= 1e-3 * (1 + abs(parts["value"]))
    return out


def every(shape):
    return list(itertools.product(*(range(n) for n in shape)))


def some(rng, shape, count=40):
    return [tuple(int(rng.integers(n)) for n in shape) for _ in range(count)]


@pytest.mark.parametrize(
    "kernel, stride, pads, dilation, groups, filters",
    [
        ((3, 5), (2, 1), [1, 2, 0, 1], (1, 1), 1, 3),
        ((3, 3), (1, 2), [2, 2, 2, 2], (2, 1), 1, 2),
        ((3, 3), (1, 1), [1, 1, 1, 1], (1, 1), 4, 4),
        ((2, 3), (2, 2), [0, 1, 1, 0], (1, 2), 4, 8),  # depthwise, two filters a channel
    ],
)
def test_conv2d_parts_are_the_loops_and_the_layers_number_is_within_the_bound(
    kernel, stride, pads, dilation, groups, filters
):
    rng = np.random.default_rng(filters * 7 + groups)
    before = rng.standard_normal((9, 8, 4)).astype(np.float32)
    layer = randomised(
        Conv2D("c", before.shape, filters, kernel, stride, pads, dilation, groups), rng
    )
    out = check_within_bound(layer, before, every(layer.output_shape))
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    weight, bias = layer.params["weight"], layer.params["bias"]
    for row, col, depth in every(out.shape):
        parts = arithmetic.neuron(layer, before, row, col, depth)
        r0, c0 = row * sh - pads[0], col * sw - pads[1]
        assert parts["rows"] == [r0, r0 + (kh - 1) * dh + 1]
        assert parts["cols"] == [c0, c0 + (kw - 1) * dw + 1]
        channels = [depth // (filters // 4)] if groups > 1 else [0, 1, 2, 3]
        assert parts["input_channels"] == channels
        total = float(bias[depth])
        for k, channel in enumerate(channels):
            partial = 0.0
            for i, j in itertools.product(range(kh), range(kw)):
                r, c = r0 + i * dh, c0 + j * dw
                x = float(before[r, c, channel]) if 0 <= r < 9 and 0 <= c < 8 else 0.0
                assert parts["window"][i, j, k] == x
                assert parts["weights"][i, j, k] == weight[depth, k, i, j]
                partial += x * float(weight[depth, k, i, j])
            assert parts["channel_sums"][k] == pytest.approx(partial, rel=1e-12, abs=1e-12)
            total += partial
        assert parts["value"] == pytest.approx(total, rel=1e-12, abs=1e-12)


def pool_reference(before, r0, c0, kernel, depth, fill):
    """The window by a loop: fill off the input."""
    h, w, _ = before.shape
    return [
        [
            float(before[r0 + i, c0 + j, depth]) if 0 <= r0 + i < h and 0 <= c0 + j < w else fill
            for j in range(kernel[1])
        ]
        for i in range(kernel[0])
    ]


@pytest.mark.parametrize(
    "kernel, stride, pads, ceil",
    [
        ((3, 3), (2, 2), [1, 1, 1, 1], False),
        ((3, 2), (2, 2), [0, 1, 1, 0], True),
        ((2, 2), (3, 3), 0, True),
    ],
)
def test_maxpool_pads_with_minus_infinity_and_marks_the_first_maximum(kernel, stride, pads, ceil):
    rng = np.random.default_rng(3)
    before = rng.standard_normal((7, 8, 2)).astype(np.float32)
    before[2, 2, 0] = before[2, 3, 0] = 9.0  # a tie inside one window
    layer = Pool2D("p", before.shape, kernel, stride, pads, ceil)
    out = layer.forward(before[None])[0]
    pads = [pads] * 4 if isinstance(pads, int) else pads
    for row, col, depth in every(out.shape):
        parts = arithmetic.neuron(layer, before, row, col, depth)
        r0, c0 = row * stride[0] - pads[0], col * stride[1] - pads[1]
        window = pool_reference(before, r0, c0, kernel, depth, -math.inf)
        assert parts["window"].tolist() == window
        best = max(max(line) for line in window)
        first = next(
            (i, j) for i, line in enumerate(window) for j, v in enumerate(line) if v == best
        )
        assert parts["argmax"] == list(first)
        assert parts["value"] == best == out[row, col, depth] and parts["tolerance"] == 0


@pytest.mark.parametrize("include_pad", [False, True])
@pytest.mark.parametrize(
    "kernel, stride, pads, ceil",
    [
        ((3, 3), (2, 2), [1, 1, 1, 1], False),
        ((3, 3), (2, 2), [1, 0, 1, 2], True),
        ((2, 3), (3, 2), 0, True),
    ],
)
def test_avgpool_divides_as_pytorch_counts(kernel, stride, pads, ceil, include_pad):
    rng = np.random.default_rng(4)
    before = rng.standard_normal((8, 7, 3)).astype(np.float32)
    layer = AvgPool2D("a", before.shape, kernel, stride, pads, ceil, include_pad)
    out = check_within_bound(layer, before, every(layer.output_shape))
    top, left, bottom, right = [pads] * 4 if isinstance(pads, int) else pads
    for row, col, depth in every(out.shape):
        parts = arithmetic.neuron(layer, before, row, col, depth)
        r0, c0 = row * stride[0] - top, col * stride[1] - left
        window = pool_reference(before, r0, c0, kernel, depth, 0.0)
        assert parts["window"].tolist() == window
        # PyTorch's avg_pool2d: the window clipped to the padded input (never the ceil
        # overhang) when padding counts, else to the input itself.
        if include_pad:
            hend, wend = min(r0 + kernel[0], 8 + bottom), min(c0 + kernel[1], 7 + right)
            count = (hend - r0) * (wend - c0)
        else:
            count = (min(r0 + kernel[0], 8) - max(r0, 0)) * (min(c0 + kernel[1], 7) - max(c0, 0))
        assert parts["count"] == count == int(parts["counted"].sum())
        assert parts["value"] == pytest.approx(sum(map(sum, window)) / count, rel=1e-12, abs=1e-12)


def test_gap_is_the_mean_of_the_whole_channel():
    rng = np.random.default_rng(5)
    before = (rng.standard_normal((13, 11, 6)) * 3 + 1).astype(np.float32)
    layer = GlobalAvgPool("g", before.shape)
    check_within_bound(layer, before, every(layer.output_shape))
    parts = arithmetic.neuron(layer, before, 0, 0, 4)
    assert parts["rows"] == [0, 13] and parts["cols"] == [0, 11] and parts["count"] == 143
    total = math.fsum(float(before[r, c, 4]) for r in range(13) for c in range(11))
    assert parts["sum"] == pytest.approx(total, rel=1e-12)
    assert parts["mean"] == parts["value"] == pytest.approx(total / 143, rel=1e-12)
    # Only the first 12 x 12 numbers are given; 11 columns are all of them.
    assert parts["window_rows"] == [0, 12] and parts["window_cols"] == [0, 11]
    corner = [[float(before[r, c, 4]) for c in range(11)] for r in range(12)]
    assert parts["window"].tolist() == corner


def test_gap_of_a_224x224_channel_gives_its_corner_and_the_exact_sum():
    rng = np.random.default_rng(15)
    before = rng.standard_normal((224, 224, 3)).astype(np.float32)
    parts = arithmetic.neuron(GlobalAvgPool("g", before.shape), before, 0, 0, 2)
    total = math.fsum(float(before[r, c, 2]) for r in range(224) for c in range(224))
    assert parts["count"] == 50176 and parts["sum"] == pytest.approx(total, rel=1e-12, abs=1e-9)
    assert parts["mean"] == pytest.approx(total / 50176, rel=1e-12, abs=1e-12)
    assert parts["window"].shape == (12, 12) and parts["window"][11, 11] == before[11, 11, 2]
    assert abs(parts["value"] - float(before[:, :, 2].mean())) <= parts["tolerance"]


def test_batchnorm_is_gamma_times_the_normalised_input_plus_beta():
    rng = np.random.default_rng(6)
    before = (rng.standard_normal((5, 4, 3)) * 4).astype(np.float32)
    layer = BatchNorm("bn", before.shape, eps=1e-3)
    p = layer.params
    p["weight"][...] = rng.uniform(0.5, 2, 3)
    p["bias"][...] = rng.standard_normal(3)
    p["running_mean"][...] = rng.standard_normal(3)
    p["running_var"][...] = rng.uniform(0.01, 3, 3)
    check_within_bound(layer, before, every(layer.output_shape))
    parts = arithmetic.neuron(layer, before, 3, 1, 2)
    x, mean, var = float(before[3, 1, 2]), float(p["running_mean"][2]), float(p["running_var"][2])
    gamma, beta = float(p["weight"][2]), float(p["bias"][2])
    assert (parts["input_value"], parts["mean"], parts["var"], parts["eps"]) == (x, mean, var, 1e-3)
    assert (parts["gamma"], parts["beta"], parts["rows"], parts["cols"]) == (
        gamma,
        beta,
        [3, 4],
        [1, 2],
    )
    expected = gamma * (x - mean) / math.sqrt(var + 1e-3) + beta
    assert parts["value"] == pytest.approx(expected, rel=1e-14, abs=1e-14)
    assert parts["normalized"] == pytest.approx((x - mean) / math.sqrt(var + 1e-3), rel=1e-14)


@pytest.mark.parametrize(
    "make", [lambda s: LeakyReLU("l", s, 0.1), lambda s: Sigmoid("s", s), lambda s: Tanh("t", s)]
)
def test_elementwise_kinds_read_one_number(make):
    rng = np.random.default_rng(7)
    before = (rng.standard_normal((6, 5, 4)) * 6).astype(np.float32)
    before[0, 0, 0], before[0, 1, 0], before[0, 2, 0] = 0.0, -30.0, 1e-30
    layer = make(before.shape)
    check_within_bound(layer, before, every(before.shape))
    formula = {
        "leakyrelu": lambda x: x if x > 0 else 0.1 * x,
        "sigmoid": lambda x: 1 / (1 + math.exp(-x)),
        "tanh": math.tanh,
    }[layer.kind]
    for row, col, depth in some(rng, before.shape) + [(0, 0, 0), (0, 1, 0), (0, 2, 0)]:
        parts = arithmetic.neuron(layer, before, row, col, depth)
        x = float(before[row, col, depth])
        assert parts["input_value"] == x and parts["rows"] == [row, row + 1]
        assert parts["value"] == pytest.approx(formula(x), rel=1e-14, abs=1e-300)
    if layer.kind == "leakyrelu":
        assert arithmetic.neuron(layer, before, 0, 0, 0)["alpha"] == 0.1


def test_flatten_points_at_the_number_it_copies_depth_major():
    rng = np.random.default_rng(8)
    before = rng.standard_normal((3, 4, 5)).astype(np.float32)
    layer = Flatten("f", before.shape)
    out = check_within_bound(layer, before, every(layer.output_shape))
    index = 0
    for d, r, c in itertools.product(range(5), range(3), range(4)):
        parts = arithmetic.neuron(layer, before, 0, 0, index)
        assert (
            parts["source"] == [r, c, d]
            and parts["rows"] == [r, r + 1]
            and parts["cols"] == [c, c + 1]
        )
        assert parts["value"] == before[r, c, d] == out[0, 0, index]
        index += 1


@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_logsoftmax_is_the_logit_less_its_logsumexp(scale):
    rng = np.random.default_rng(9)
    before = (rng.standard_normal((1, 1, 10)) * scale).astype(np.float32)
    layer = LogSoftmax("ls", before.shape)
    check_within_bound(layer, before, every(layer.output_shape))
    logits = [float(v) for v in before[0, 0]]
    lse = math.log(sum(math.exp(v) for v in logits)) if scale == 1 else None
    for depth in range(10):
        parts = arithmetic.neuron(layer, before, 0, 0, depth)
        assert parts["max"] == max(logits) and parts["logits"].tolist() == logits
        assert parts["exps"][int(np.argmax(logits))] == 1.0
        if lse is not None:
            assert parts["logsumexp"] == pytest.approx(lse, rel=1e-14)
            assert parts["value"] == pytest.approx(logits[depth] - lse, rel=1e-13, abs=1e-13)
        assert parts["value"] <= 0
