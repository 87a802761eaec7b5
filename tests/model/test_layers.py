"""Every layer against an independent reference: loops for forward, finite differences for
backward (float64), and known answers for the cases that are easy to get subtly wrong."""

import numpy as np
import pytest

from model.layers import FC, Conv, MaxPool, ReLU, Softmax, softmax_cross_entropy


def numeric_gradient(f, x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Centred finite differences of the scalar f() with respect to x (changed in place)."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        old = x[index]
        x[index] = old + h
        plus = f()
        x[index] = old - h
        minus = f()
        x[index] = old
        grad[index] = (plus - minus) / (2 * h)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


def check_layer_gradients(layer, x: np.ndarray, rng: np.random.Generator) -> None:
    """Compare backward with finite differences of sum(out * dout) for x and every param."""
    layer.params = {k: rng.standard_normal(v.shape) for k, v in layer.params.items()}
    out = layer.forward(x)
    dout = rng.standard_normal(out.shape)

    def objective() -> float:
        return float(np.sum(layer.forward(x) * dout))

    _, cache = layer.forward_train(x)
    dx, grads = layer.backward(dout, cache)
    assert relative_error(dx, numeric_gradient(objective, x)) < 1e-6
    for name, value in layer.params.items():
        assert relative_error(grads[name], numeric_gradient(objective, value)) < 1e-6, name


def loop_conv(x, weight, bias, stride, pad):
    """The textbook definition: one dot product per output neuron."""
    n, h, w, c = x.shape
    f, _, kh, kw = weight.shape
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    ho, wo = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
    out = np.zeros((n, ho, wo, f))
    for b in range(n):
        for i in range(ho):
            for j in range(wo):
                patch = xp[b, i * stride : i * stride + kh, j * stride : j * stride + kw, :]
                for k in range(f):
                    out[b, i, j, k] = np.sum(patch * weight[k].transpose(1, 2, 0)) + bias[k]
    return out


@pytest.mark.parametrize(
    "h, w, c, f, size, stride, pad",
    [
        (7, 7, 3, 4, 3, 1, 1),
        (8, 6, 2, 3, 3, 2, 0),
        (9, 9, 3, 2, 5, 2, 2),
        (6, 7, 4, 5, 2, 1, 0),  # even kernel
        (10, 8, 1, 3, 4, 2, 1),  # even kernel, stride 2
        (5, 5, 3, 2, 1, 1, 0),
        (6, 6, 2, 2, 3, 1, 2),  # pad wider than the kernel's half
    ],
)
def test_conv_forward_matches_loop(h, w, c, f, size, stride, pad):
    rng = np.random.default_rng(h * 100 + size)
    layer = Conv("conv", (h, w, c), filters=f, size=size, stride=stride, pad=pad)
    layer.params = {
        "weight": rng.standard_normal((f, c, size, size)).astype(np.float32),
        "bias": rng.standard_normal(f).astype(np.float32),
    }
    x = rng.standard_normal((2, h, w, c)).astype(np.float32)
    out = layer.forward(x)
    expected = loop_conv(x, layer.params["weight"], layer.params["bias"], stride, pad)
    assert out.dtype == np.float32
    assert out.shape == (2, *layer.output_shape)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "size, stride, pad",
    [(3, 1, 1), (3, 2, 1), (3, 1, 0), (2, 2, 0), (5, 1, 2), (4, 2, 2)],
)
def test_conv_backward_matches_finite_differences(size, stride, pad):
    rng = np.random.default_rng(size * 10 + stride + pad)
    layer = Conv("conv", (6, 5, 2), filters=3, size=size, stride=stride, pad=pad)
    check_layer_gradients(layer, rng.standard_normal((2, 6, 5, 2)), rng)


def test_conv_weight_gradient_without_input_gradient():
    rng = np.random.default_rng(1)
    layer = Conv("conv", (5, 5, 2), filters=3, size=3, pad=1)
    layer.params = {k: rng.standard_normal(v.shape) for k, v in layer.params.items()}
    x = rng.standard_normal((2, 5, 5, 2))
    out, cache = layer.forward_train(x)
    dout = rng.standard_normal(out.shape)
    dx, grads = layer.backward(dout, cache, need_dx=False)
    _, full = layer.backward(dout, cache)
    assert dx is None
    np.testing.assert_allclose(grads["weight"], full["weight"])


def test_relu_backward_matches_finite_differences():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 3, 3))
    x[np.abs(x) < 1e-3] = 0.5  # keep finite differences away from the kink
    check_layer_gradients(ReLU("relu", (4, 3, 3)), x, rng)


# 8 rows with 2x2/2 windows: every input in exactly one window (backward writes each once).
@pytest.mark.parametrize("size, stride, h", [(2, 2, 7), (2, 2, 8), (3, 2, 7), (3, 1, 7), (2, 1, 7)])
def test_pool_backward_matches_finite_differences(size, stride, h):
    rng = np.random.default_rng(size + stride)
    # Distinct values: finite differences are only defined away from ties.
    x = rng.permutation(2 * h * 6 * 3).reshape(2, h, 6, 3) / 10.0
    check_layer_gradients(MaxPool("pool", (h, 6, 3), size=size, stride=stride), x, rng)


def test_pool_forward_known_answer():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    out = MaxPool("pool", (4, 4, 1), size=2, stride=2).forward(x)
    np.testing.assert_array_equal(out[0, :, :, 0], [[5, 7], [13, 15]])


def test_pool_ties_send_the_gradient_to_the_first_max_only():
    layer = MaxPool("pool", (2, 4, 1), size=2, stride=2)
    x = np.array([[3, 3, 0, 1], [3, 3, 1, 1]], np.float32).reshape(1, 2, 4, 1)
    out, cache = layer.forward_train(x)
    dx, _ = layer.backward(np.ones_like(out), cache)
    # Window 1: all four tie -> top-left. Window 2: three 1s tie -> first in row-major.
    np.testing.assert_array_equal(dx[0, :, :, 0], [[1, 0, 0, 1], [0, 0, 0, 0]])


def test_overlapping_pool_ties_go_to_each_windows_first_max():
    layer = MaxPool("pool", (2, 3, 1), size=2, stride=1)
    x = np.zeros((1, 2, 3, 1), np.float32)
    out, cache = layer.forward_train(x)
    dx, _ = layer.backward(np.array([2.0, 3.0], np.float32).reshape(out.shape), cache)
    np.testing.assert_array_equal(dx[0, :, :, 0], [[2, 3, 0], [0, 0, 0]])


def test_fc_flattens_depth_major_like_torch():
    # Input (H=1, W=2, D=2); depth-major flattening is (d0w0, d0w1, d1w0, d1w1).
    layer = FC("fc", (1, 2, 2), units=1)
    layer.params["weight"][...] = [[1, 10, 100, 1000]]
    x = np.array([[[[1, 2], [3, 4]]]], np.float32)  # x[0, 0, w, d]
    out = layer.forward(x)
    assert out.shape == (1, 1, 1, 1)
    assert out[0, 0, 0, 0] == 1 * 1 + 3 * 10 + 2 * 100 + 4 * 1000


def test_fc_backward_matches_finite_differences():
    rng = np.random.default_rng(3)
    check_layer_gradients(FC("fc", (3, 2, 4), units=5), rng.standard_normal((3, 3, 2, 4)), rng)


def test_softmax_backward_matches_finite_differences():
    rng = np.random.default_rng(4)
    check_layer_gradients(Softmax("softmax", (1, 1, 6)), rng.standard_normal((3, 1, 1, 6)), rng)


def test_softmax_is_stable_for_huge_scores():
    out = Softmax("softmax", (1, 1, 3)).forward(np.array([[[[1000.0, 1000.0, -1000.0]]]]))
    np.testing.assert_allclose(out.ravel(), [0.5, 0.5, 0.0])


def test_cross_entropy_known_answer_and_gradient():
    scores = np.zeros((2, 4))
    loss, dscores = softmax_cross_entropy(scores, np.array([1, 3]))
    assert loss == pytest.approx(np.log(4))
    rng = np.random.default_rng(5)
    scores = rng.standard_normal((3, 5))
    labels = np.array([0, 4, 2])
    _, dscores = softmax_cross_entropy(scores, labels)
    numeric = numeric_gradient(lambda: softmax_cross_entropy(scores, labels)[0], scores)
    assert relative_error(dscores, numeric) < 1e-6


def test_label_smoothing_known_answer_and_gradient():
    # Equal scores: every class has p = 1/4 whatever the target, so the loss is log 4.
    loss, dscores = softmax_cross_entropy(np.zeros((2, 4)), np.array([1, 3]), smoothing=0.2)
    assert loss == pytest.approx(np.log(4))
    # d loss / d scores = (p - target) / N: target 0.8 + 0.05 on the label, 0.05 elsewhere.
    np.testing.assert_allclose(dscores[0], [0.1, -0.3, 0.1, 0.1])
    np.testing.assert_allclose(dscores[1], [0.1, 0.1, 0.1, -0.3])
    rng = np.random.default_rng(6)
    scores, labels = rng.standard_normal((3, 5)), np.array([0, 4, 2])
    _, dscores = softmax_cross_entropy(scores, labels, smoothing=0.1)
    numeric = numeric_gradient(lambda: softmax_cross_entropy(scores, labels, 0.1)[0], scores)
    assert relative_error(dscores, numeric) < 1e-6


def test_kernel_that_does_not_fit_is_refused():
    with pytest.raises(ValueError, match="does not fit"):
        Conv("conv", (2, 2, 1), filters=1, size=5)
    with pytest.raises(ValueError, match="does not fit"):
        MaxPool("pool", (1, 1, 1), size=2)
