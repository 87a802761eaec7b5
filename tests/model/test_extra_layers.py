"""The imported models' layer kinds (model/extra_layers.py) against loops that follow the
definitions (PyTorch's, which ONNX Runtime shares), and their backward passes against
float64 finite differences."""

import numpy as np
import pytest

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
from model.network import Network
from tests.model.test_layers import numeric_gradient, relative_error


def check_gradients(layer, x: np.ndarray, rng: np.random.Generator) -> None:
    """backward vs centred differences of sum(out * dout), for x and every parameter."""
    layer.params = {k: v.astype(np.float64) for k, v in layer.params.items()}
    dout = rng.standard_normal(layer.forward(x).shape)

    def objective() -> float:
        return float(np.sum(layer.forward(x) * dout))

    dx, grads = layer.backward(dout, layer.forward_train(x)[1])
    assert dx.shape == x.shape
    assert relative_error(dx, numeric_gradient(objective, x)) < 1e-6
    assert sorted(grads) == sorted(layer.params)
    for name, value in layer.params.items():
        assert relative_error(grads[name], numeric_gradient(objective, value)) < 1e-6, name


def loop_conv(x, weight, bias, stride, pads, dilation, groups):
    """One dot product per output neuron, on an explicitly zero-padded input."""
    n, h, w, c = x.shape
    f, cg, kh, kw = weight.shape
    (sh, sw), (dh, dw), (top, left, bottom, right) = stride, dilation, pads
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    ho = (h + top + bottom - (kh - 1) * dh - 1) // sh + 1
    wo = (w + left + right - (kw - 1) * dw - 1) // sw + 1
    out = np.zeros((n, ho, wo, f))
    per_group = f // groups
    for b in range(n):
        for k in range(f):
            first = (k // per_group) * cg
            for i in range(ho):
                for j in range(wo):
                    total = bias[k]
                    for ch in range(cg):
                        for u in range(kh):
                            for v in range(kw):
                                pixel = xp[b, i * sh + u * dh, j * sw + v * dw, first + ch]
                                total += pixel * weight[k, ch, u, v]
                    out[b, i, j, k] = total
    return out


def out_size(size, kernel, stride, before, after, ceil):
    if ceil:
        out = int(np.ceil((size + before + after - kernel) / stride)) + 1
        if (out - 1) * stride >= size + before:
            out -= 1
        return out
    return (size + before + after - kernel) // stride + 1


def loop_pool(x, kernel, stride, pads, ceil, mode, count_include_pad=False):
    """PyTorch's definition: window [start, start + k) clipped to the (padded) input."""
    n, h, w, c = x.shape
    (kh, kw), (sh, sw), (top, left, bottom, right) = kernel, stride, pads
    ho = out_size(h, kh, sh, top, bottom, ceil)
    wo = out_size(w, kw, sw, left, right, ceil)
    out = np.zeros((n, ho, wo, c))
    for i in range(ho):
        for j in range(wo):
            r0, c0 = i * sh - top, j * sw - left
            r1, c1 = min(r0 + kh, h + bottom), min(c0 + kw, w + right)
            padded_count = (r1 - r0) * (c1 - c0)
            r0, c0, r1, c1 = max(r0, 0), max(c0, 0), min(r1, h), min(c1, w)
            window = x[:, r0:r1, c0:c1, :]
            if mode == "max":
                out[:, i, j] = window.max(axis=(1, 2))
            else:
                count = padded_count if count_include_pad else (r1 - r0) * (c1 - c0)
                out[:, i, j] = window.sum(axis=(1, 2)) / count
    return out


CONV_CASES = [
    # (h, w, c, f, kernel, stride, pads [t, l, b, r], dilation, groups)
    (7, 7, 3, 4, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    (8, 9, 2, 3, (3, 5), (2, 1), (0, 2, 1, 2), (1, 1), 1),  # rectangular, asymmetric
    (9, 8, 3, 2, (3, 3), (1, 2), (2, 2, 2, 2), (2, 2), 1),  # dilated
    (7, 6, 2, 2, (2, 2), (2, 2), (0, 0, 1, 1), (1, 1), 1),  # TF "same": pad after only
    (6, 6, 1, 3, (1, 1), (3, 3), (0, 0, 0, 0), (1, 1), 1),  # stride past the last pixels
    (7, 7, 3, 3, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 3),  # depthwise
    (8, 7, 2, 6, (3, 3), (2, 2), (1, 0, 1, 1), (1, 2), 2),  # depthwise, multiplier 3
]


@pytest.mark.parametrize("h, w, c, f, kernel, stride, pads, dilation, groups", CONV_CASES)
def test_conv2d_forward_matches_loop(h, w, c, f, kernel, stride, pads, dilation, groups):
    rng = np.random.default_rng(h * 31 + f)
    layer = Conv2D(
        "c", (h, w, c), f, list(kernel), list(stride), list(pads), list(dilation), groups
    )
    layer.params = {
        "weight": rng.standard_normal(layer.params["weight"].shape).astype(np.float32),
        "bias": rng.standard_normal(f).astype(np.float32),
    }
    x = rng.standard_normal((2, h, w, c)).astype(np.float32)
    expected = loop_conv(
        x, layer.params["weight"], layer.params["bias"], stride, pads, dilation, groups
    )
    out = layer.forward(x)
    assert out.shape == (2, *layer.output_shape) == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("h, w, c, f, kernel, stride, pads, dilation, groups", CONV_CASES)
def test_conv2d_backward_matches_finite_differences(
    h, w, c, f, kernel, stride, pads, dilation, groups
):
    rng = np.random.default_rng(7)
    layer = Conv2D(
        "c", (h, w, c), f, list(kernel), list(stride), list(pads), list(dilation), groups
    )
    layer.params = {k: rng.standard_normal(v.shape) for k, v in layer.params.items()}
    check_gradients(layer, rng.standard_normal((1, h, w, c)), rng)


POOL_CASES = [
    # (h, w, kernel, stride, pads, ceil_mode)
    (6, 6, (2, 2), (2, 2), (0, 0, 0, 0), False),
    (5, 5, (2, 2), (2, 2), (0, 0, 0, 0), True),  # ceil: one more, partial window
    (5, 5, (2, 2), (2, 2), (1, 1, 1, 1), True),  # ceil: the extra window starts in padding
    (7, 6, (3, 3), (2, 2), (1, 1, 1, 1), False),  # overlapping, padded
    (7, 7, (3, 3), (2, 2), (1, 1, 1, 1), True),
    (6, 8, (3, 2), (1, 3), (0, 1, 1, 0), True),  # rectangular, asymmetric
    (4, 4, (3, 3), (1, 1), (1, 1, 1, 1), False),  # "same" 3x3
]


@pytest.mark.parametrize("h, w, kernel, stride, pads, ceil", POOL_CASES)
@pytest.mark.parametrize("mode", ["max", "avg", "avg_include_pad"])
def test_pool2d_forward_matches_loop(h, w, kernel, stride, pads, ceil, mode):
    rng = np.random.default_rng(h + w)
    include = mode == "avg_include_pad"
    cls = Pool2D if mode == "max" else AvgPool2D
    layer = cls("p", (h, w, 3), list(kernel), list(stride), list(pads), ceil, include)
    x = rng.standard_normal((2, h, w, 3)).astype(np.float32)
    expected = loop_pool(x, kernel, stride, pads, ceil, mode[:3], include)
    out = layer.forward(x)
    assert out.shape == (2, *layer.output_shape) == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("h, w, kernel, stride, pads, ceil", POOL_CASES)
@pytest.mark.parametrize("cls", [Pool2D, AvgPool2D])
def test_pool2d_backward_matches_finite_differences(cls, h, w, kernel, stride, pads, ceil):
    rng = np.random.default_rng(3)
    layer = cls("p", (h, w, 2), list(kernel), list(stride), list(pads), ceil, True)
    check_gradients(layer, rng.standard_normal((1, h, w, 2)), rng)


def test_ceil_mode_output_sizes_known_answers():
    # PyTorch: MaxPool2d(2, 2, ceil_mode=True) on 5x5 -> 3x3; with padding 1 -> 3x3, not 4x4.
    assert Pool2D("p", (5, 5, 1), 2, 2, 0, True).output_shape == (3, 3, 1)
    assert Pool2D("p", (5, 5, 1), 2, 2, 1, True).output_shape == (3, 3, 1)
    assert Pool2D("p", (5, 5, 1), 2, 2, 1, False).output_shape == (3, 3, 1)
    assert Pool2D("p", (6, 6, 1), 3, 2, 0, True).output_shape == (3, 3, 1)
    assert Pool2D("p", (6, 6, 1), 3, 2, 0, False).output_shape == (2, 2, 1)


def test_max_pool_padding_never_wins():
    x = -np.ones((1, 2, 2, 1), np.float32) * np.arange(1, 5, dtype=np.float32).reshape(1, 2, 2, 1)
    out = Pool2D("p", (2, 2, 1), 2, 1, 1).forward(x)
    assert out.max() < 0 and out[0, 0, 0, 0] == -1


def test_global_average_pool_and_flatten():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 5))
    gap = GlobalAvgPool("g", (3, 4, 5))
    np.testing.assert_allclose(gap.forward(x)[:, 0, 0], x.mean(axis=(1, 2)))
    flat = Flatten("f", (3, 4, 5))
    # torch.flatten of NCHW: depth-major.
    np.testing.assert_array_equal(flat.forward(x)[:, 0, 0], x.transpose(0, 3, 1, 2).reshape(2, -1))
    for layer in (gap, flat):
        check_gradients(layer, rng.standard_normal((2, 3, 4, 5)), rng)


def test_batchnorm_forward_and_gradients():
    rng = np.random.default_rng(1)
    layer = BatchNorm("bn", (3, 3, 4), eps=1e-3)
    p = {
        "weight": rng.standard_normal(4),
        "bias": rng.standard_normal(4),
        "running_mean": rng.standard_normal(4),
        "running_var": rng.uniform(0.5, 2, 4),
    }
    layer.params = p
    x = rng.standard_normal((2, 3, 3, 4))
    expected = (x - p["running_mean"]) / np.sqrt(p["running_var"] + 1e-3) * p["weight"] + p["bias"]
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12)
    check_gradients(layer, x, rng)


@pytest.mark.parametrize(
    "layer", [LeakyReLU("l", (3, 3, 2), 0.2), Sigmoid("s", (3, 3, 2)), Tanh("t", (3, 3, 2))]
)
def test_activations_match_their_formulas_and_gradients(layer):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 3, 2)) * 3
    formula = {
        "leakyrelu": np.where(x > 0, x, 0.2 * x),
        "sigmoid": 1 / (1 + np.exp(-x)),
        "tanh": np.tanh(x),
    }[layer.kind]
    np.testing.assert_allclose(layer.forward(x), formula, rtol=1e-12)
    check_gradients(layer, x / 3, rng)  # where the slopes are not vanishingly small


def test_sigmoid_does_not_overflow():
    out = Sigmoid("s", (1, 1, 2)).forward(np.array([[[[-1000.0, 1000.0]]]], np.float32))
    np.testing.assert_array_equal(out.ravel(), [0.0, 1.0])


def test_log_softmax_matches_log_of_softmax_and_gradients():
    rng = np.random.default_rng(4)
    layer = LogSoftmax("l", (1, 1, 5))
    x = rng.standard_normal((3, 1, 1, 5))
    e = np.exp(x)
    np.testing.assert_allclose(layer.forward(x), np.log(e / e.sum(-1, keepdims=True)), rtol=1e-12)
    check_gradients(layer, x, rng)


def test_new_kinds_build_from_a_spec_and_round_trip_their_config():
    spec = {
        "input": [9, 9, 3],
        "layers": [
            {
                "kind": "conv2d",
                "filters": 4,
                "kernel": [3, 3],
                "stride": [2, 2],
                "pads": [1, 1, 0, 0],
            },
            {"kind": "batchnorm", "eps": 1e-3},
            {"kind": "leakyrelu", "alpha": 0.1},
            {"kind": "conv2d", "filters": 4, "kernel": [3, 3], "pads": 1, "groups": 4},
            {"kind": "maxpool", "kernel": [2, 2], "ceil_mode": True},
            {"kind": "avgpool", "kernel": [2, 2], "stride": [1, 1], "count_include_pad": True},
            {"kind": "gap"},
            {"kind": "flatten"},
            {"kind": "logsoftmax"},
        ],
    }
    net = Network(spec)
    again = Network({"input": [9, 9, 3], "layers": [layer.config() for layer in net.layers]})
    assert [repr(a) for a in net.layers] == [repr(b) for b in again.layers]
    assert [layer.output_shape for layer in net.layers][-1] == (1, 1, 4)
    assert net.describe()[0]["receptive_field"] == {"size": 3, "jump": 2, "start": 0.0}


def test_refuses_groups_that_are_neither_one_nor_depthwise():
    with pytest.raises(ValueError, match="depthwise"):
        Conv2D("c", (5, 5, 4), 4, 3, groups=2)
