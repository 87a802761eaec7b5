"""How one neuron's number is computed: the parts of its arithmetic, for every layer kind.

    parts = neuron(layer, before, row, col, depth)   # before: the (H, W, C) volume it reads
    parts["value"]                                    # the number, recomputed from the parts

The parts are what a teacher puts on the board: a conv neuron's input window and filter
with one partial sum per input channel and the bias; the number a relu rectifies; a pool
window and its maximum; an fc neuron's every input times its weight; a softmax's logits and
their exponentials. Products of float32 numbers are exact in float64 and float64 sums of a
few thousand of them are far finer than float32, so the parts are given in float64 and
`value` is their exact sum (nearly). The layer itself computes in float32, in a BLAS's own
summation order, so its number can differ from `value` by rounding: `tolerance` is a bound
on that difference (gamma_n = n u / (1 - n u) times the sum of the terms' magnitudes, with
u = 2^-24, holds for any order of summing n float32 terms), and a stored number further
than that from `value` was not made by these weights.

The general kinds of imported networks (model/extra_layers.py: conv2d with stride, pads,
dilation and depthwise groups, maxpool, avgpool, gap, batchnorm, leakyrelu, sigmoid, tanh,
flatten, logsoftmax) are broken down the same way; where NumPy's float32 exp, log or tanh
enter, the bound also carries their documented error (LIBM_ULPS).

Positions and windows follow the volumes' layout (H, W, D); weights follow PyTorch's
(conv (F, C, KH, KW), fc (out, in)); an fc layer reads its input flattened depth-major
(D, H, W), as the layer does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from model.layers import Layer

UNIT_ROUNDOFF = 2.0**-24  # float32
TOP_TERMS = 12  # an fc neuron's largest contributions, listed with where they come from
GAP_SHOWN = 12  # a global average pool's channel: the corner whose numbers are given
# float64 exp overflows past 709; below this the logits' own exponentials are shown.
EXP_LIMIT = 700.0


class NotExplained(ValueError):
    """A layer kind whose arithmetic is not broken down (yet)."""


def neuron(layer: Layer, before: np.ndarray, row: int, col: int, depth: int) -> dict[str, Any]:
    """The arithmetic of `layer`'s neuron (row, col, depth) reading the volume `before`.

    before: (H, W, C), the layer's input volume. Returns a dict of the kind's parts (NumPy
    arrays and floats) plus, for every kind: "kind", "rows" and "cols" (the half-open window
    of `before` it reads, possibly past the edges where the layer pads), "value" (the
    number recomputed from the parts) and "tolerance" (how far the layer's float32 number
    may lie from it). IndexError for a position outside the layer's output; NotExplained
    for a kind this module does not know.
    """
    if before.shape != tuple(layer.input_shape):
        raise ValueError(f"{layer.name} reads a {layer.input_shape} volume, got {before.shape}")
    h, w, d = layer.output_shape
    if not (0 <= row < h and 0 <= col < w and 0 <= depth < d):
        raise IndexError(f"{layer.name} has no neuron ({row}, {col}, {depth}) in {h}x{w}x{d}")
    explain = EXPLAIN.get(layer.kind)
    if explain is None:
        raise NotExplained(f"{layer.name} is a {layer.kind} layer, whose arithmetic is not shown")
    return {"kind": layer.kind, **explain(layer, before, row, col, depth)}


def _gamma(n: int) -> float:
    return n * UNIT_ROUNDOFF / (1 - n * UNIT_ROUNDOFF)


def conv(layer: Layer, before: np.ndarray, row: int, col: int, depth: int) -> dict[str, Any]:
    """window and weights (KH, KW, C), bias, channel_sums (C,): value = bias + sum(channel_sums),
    channel_sums[c] = sum(window[:, :, c] * weights[:, :, c]). 0 in the window where it pads."""
    k, stride, pad = layer.size, layer.stride, layer.pad
    r0, c0 = row * stride - pad, col * stride - pad
    return _filter(layer, depth, _sample(before, r0, c0, (k, k)), [r0, r0 + k], [c0, c0 + k])


def _filter(layer: Layer, depth: int, window: np.ndarray, rows, cols) -> dict[str, Any]:
    """A conv neuron's parts, from the window (KH, KW, C') its filter `depth` lies over."""
    weights = layer.params["weight"][depth].transpose(1, 2, 0).astype(np.float64)
    bias = float(layer.params["bias"][depth])
    products = window * weights
    channel_sums = products.sum(axis=(0, 1))
    return {
        "rows": rows,
        "cols": cols,
        "window": window,
        "weights": weights,
        "bias": bias,
        "channel_sums": channel_sums,
        "value": bias + float(channel_sums.sum()),
        "tolerance": _gamma(products.size + 1) * (abs(bias) + float(np.abs(products).sum())),
    }


def relu(layer: Layer, before: np.ndarray, row: int, col: int, depth: int) -> dict[str, Any]:
    """input_value: value = max(0, input_value), exactly."""
    x = float(before[row, col, depth])
    return {
        "rows": [row, row + 1],
        "cols": [col, col + 1],
        "input_value": x,
        "value": max(0.0, x),
        "tolerance": 0.0,
    }


def pool(layer: Layer, before: np.ndarray, row: int, col: int, depth: int) -> dict[str, Any]:
    """window (KH, KW) of input channel `depth` and argmax [r, c] in it (the first maximum,
    row by row, as the layer's backward pass picks it): value = max(window), exactly."""
    k, stride = layer.size, layer.stride
    r0, c0 = row * stride, col * stride
    return _maximum(before[r0 : r0 + k, c0 : c0 + k, depth].astype(np.float64), r0, c0)


def _maximum(window: np.ndarray, r0: int, c0: int) -> dict[str, Any]:
    """A max pool's parts: the window at (r0, c0), its first maximum row by row, exact."""
    r, c = np.unravel_index(int(np.argmax(window)), window.shape)
    kh, kw = window.shape
    return {
        "rows": [r0, r0 + kh],
        "cols": [c0, c0 + kw],
        "window": window,
        "argmax": [int(r), int(c)],
        "value": float(window[r, c]),
        "tolerance": 0.0,
    }


def fc(layer: Layer, before: np.ndarray, row: int, col: int, depth: int) -> dict[str, Any]:
    """bias and terms (H * W * C,), every input times its weight in the flatten order (D, H,
    W): value = bias + sum(terms). top: the TOP_TERMS largest terms by magnitude, each
    {"index" (into terms), "position" [row, col, depth] of `before`, "input", "weight",
    "term"}."""
    h, w, c = before.shape
    flat = before.transpose(2, 0, 1).reshape(-1).astype(np.float64)
    weights = layer.params["weight"][depth].astype(np.float64)
    bias = float(layer.params["bias"][depth])
    terms = flat * weights
    order = np.argsort(-np.abs(terms), kind="stable")[:TOP_TERMS]
    top = []
    for index in order:
        d, r, cc = np.unravel_index(int(index), (c, h, w))
        top.append(
            {
                "index": int(index),
                "position": [int(r), int(cc), int(d)],
                "input": float(flat[index]),
                "weight": float(weights[index]),
                "term": float(terms[index]),
            }
        )
    return {
        "rows": [0, h],
        "cols": [0, w],
        "bias": bias,
        "terms": terms,
        "top": top,
        "value": bias + float(terms.sum()),
        "tolerance": _gamma(terms.size + 1) * (abs(bias) + float(np.abs(terms).sum())),
    }


def softmax(layer: Layer, before: np.ndarray, row: int, col: int, depth: int) -> dict[str, Any]:
    """logits (every class's input number), shift, exps = exp(logits - shift) and their sum:
    value = exps[depth] / sum. shift is 0 (plain exponentials) unless a logit is too large
    for exp, then the largest logit; the ratio is the same either way."""
    logits = before[row, col, :].astype(np.float64)
    top = float(logits.max())
    shift = top if top > EXP_LIMIT else 0.0
    exps = np.exp(logits - shift)
    total = float(exps.sum())
    value = float(exps[depth]) / total
    # The layer subtracts its max in float32 (an error of u per unit of logit span, times
    # exp's slope), then sums n exponentials and divides: a few u per class and span.
    span = top - float(logits.min())
    return {
        "rows": [row, row + 1],
        "cols": [col, col + 1],
        "logits": logits,
        "shift": shift,
        "exps": exps,
        "sum": total,
        "value": value,
        "tolerance": value * UNIT_ROUNDOFF * 4 * (logits.size + span + 4),
    }


# --- the general kinds of imported networks (model/extra_layers.py) ----------------------


def conv2d(layer: Layer, before: np.ndarray, row: int, col: int, depth: int) -> dict[str, Any]:
    """Like conv, for any kernel, stride, [top, left, bottom, right] pads and dilation:
    window and weights (KH, KW, C'), bias, channel_sums (C',), input_channels (C',) the
    input channel each of the window's C' channels is: all C for groups 1, the one channel
    f // (F / C) for a depthwise filter f. value = bias + sum(channel_sums). The window
    samples every dilation-th number: window[i, j] = before[r0 + i * dh, c0 + j * dw],
    0 where it pads; rows and cols span the dilated kernel."""
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel, layer.stride, layer.dilation
    top, left = layer.pads[0], layer.pads[1]
    r0, c0 = row * sh - top, col * sw - left
    c = before.shape[2]
    channels = list(range(c)) if layer.groups == 1 else [depth // (layer.filters // c)]
    window = _sample(before, r0, c0, (kh, kw), (dh, dw), channels)
    span_h, span_w = layer.span
    rows, cols = [r0, r0 + span_h], [c0, c0 + span_w]
    return {**_filter(layer, depth, window, rows, cols), "input_channels": channels}


def _pool_window(layer: Layer, before: np.ndarray, row: int, col: int, depth: int, fill: float):
    """(window, r0, c0): a maxpool's or avgpool's (KH, KW) window of channel `depth`."""
    (kh, kw), (sh, sw) = layer.kernel, layer.stride
    r0, c0 = row * sh - layer.pads[0], col * sw - layer.pads[1]
    return _sample(before, r0, c0, (kh, kw), channels=depth, fill=fill)[:, :, 0], r0, c0


def maxpool(layer: Layer, before: np.ndarray, row: int, col: int, depth: int) -> dict[str, Any]:
    """window (KH, KW) of input channel `depth`, -inf where it pads (padding never wins),
    argmax [r, c] in it (the first maximum, row by row, as backward picks it):
    value = max(window), exactly. With ceil_mode the last window may hang past the padding;
    those places are -inf too."""
    return _maximum(*_pool_window(layer, before, row, col, depth, -np.inf))


def avgpool(layer: Layer, before: np.ndarray, row: int, col: int, depth: int) -> dict[str, Any]:
    """window (KH, KW) of input channel `depth`, 0 where it pads; counted (KH, KW) whether
    each place is in the divisor; count = sum(counted), sum = sum(window):
    value = sum / count. Without count_include_pad only the input's own numbers count;
    with it the padding counts too, but not ceil_mode's overhang past the padding (as
    PyTorch and ONNX Runtime divide).

    The layer adds KH * KW float32 numbers and divides once: gamma_n * sum(|window|) /
    count for the sum, one rounding u of the quotient."""
    window, r0, c0 = _pool_window(layer, before, row, col, depth, 0.0)
    (kh, kw), (h, w, _) = layer.kernel, before.shape
    top, left, bottom, right = layer.pads
    low_r, low_c, high_r, high_c = 0, 0, h, w
    if layer.count_include_pad:
        low_r, low_c, high_r, high_c = -top, -left, h + bottom, w + right
    rows, cols = r0 + np.arange(kh), c0 + np.arange(kw)
    counted = ((rows >= low_r) & (rows < high_r))[:, None] & ((cols >= low_c) & (cols < high_c))
    count = max(int(counted.sum()), 1)
    total = float(window.sum())
    value = total / count
    error = _gamma(window.size) * float(np.abs(window).sum()) / count
    return {
        "rows": [r0, r0 + kh],
        "cols": [c0, c0 + kw],
        "window": window,
        "counted": counted,
        "count": count,
        "sum": total,
        "value": value,
        "tolerance": error + UNIT_ROUNDOFF * (abs(value) + error),
    }


def gap(layer: Layer, before: np.ndarray, row: int, col: int, depth: int) -> dict[str, Any]:
    """The whole (H, W) channel `depth` is read: count = H * W, sum = its sum, mean = sum /
    count = value. Of its numbers only `window`, the first GAP_SHOWN x GAP_SHOWN (rows
    window_rows, cols window_cols), is given: a 224x224 channel is 50,176 numbers, which
    the page draws from the stream rather than as figures. Rounding as avgpool's."""
    channel = before[:, :, depth].astype(np.float64)
    h, w = channel.shape
    total = float(channel.sum())
    value = total / channel.size
    error = _gamma(channel.size) * float(np.abs(channel).sum()) / channel.size
    shown_h, shown_w = min(h, GAP_SHOWN), min(w, GAP_SHOWN)
    return {
        "rows": [0, h],
        "cols": [0, w],
        "window": channel[:shown_h, :shown_w],
        "window_rows": [0, shown_h],
        "window_cols": [0, shown_w],
        "count": int(channel.size),
        "sum": total,
        "mean": value,
        "value": value,
        "tolerance": error + UNIT_ROUNDOFF * (abs(value) + error),
    }


def batchnorm(layer: Layer, before: np.ndarray, row: int, col: int, depth: int) -> dict[str, Any]:
    """input_value x, mean, var, eps, gamma (the layer's weight), beta (its bias), std =
    sqrt(var + eps), normalized = (x - mean) / std: value = gamma * normalized + beta.

    The layer computes x * s + (beta - mean * s) with s = gamma / sqrt(var + eps), each
    step one float32 rounding (eps itself rounded to float32): s carries at most 5 of them
    (relative), x * s two more and the final add one, mean * s three: so within
    gamma_9 (|x s| + |mean s| + |beta|), one u spare for this float64 evaluation."""
    p = layer.params
    x = float(before[row, col, depth])
    mean, var = float(p["running_mean"][depth]), float(p["running_var"][depth])
    scale, shift = float(p["weight"][depth]), float(p["bias"][depth])
    std = float(np.sqrt(var + layer.eps))
    normalized = (x - mean) / std
    s = scale / std
    return {
        "rows": [row, row + 1],
        "cols": [col, col + 1],
        "input_value": x,
        "mean": mean,
        "var": var,
        "eps": layer.eps,
        "gamma": scale,
        "beta": shift,
        "std": std,
        "normalized": normalized,
        "value": scale * normalized + shift,
        "tolerance": _gamma(9) * (abs(x * s) + abs(mean * s) + abs(shift)),
    }


def leakyrelu(layer: Layer, before: np.ndarray, row: int, col: int, depth: int) -> dict[str, Any]:
    """input_value x and alpha: value = x where x > 0, alpha * x elsewhere. Exact for a
    positive x; otherwise alpha rounded to float32 and the product rounded: gamma_3 |alpha x|
    (one u spare for this float64 product)."""
    x = float(before[row, col, depth])
    value = x if x > 0 else layer.alpha * x
    return {
        "rows": [row, row + 1],
        "cols": [col, col + 1],
        "input_value": x,
        "alpha": layer.alpha,
        "value": value,
        "tolerance": 0.0 if x > 0 else _gamma(3) * abs(value),
    }


# NumPy's float32 exp, log and tanh are not correctly rounded; its documentation (the SIMD
# and SVML loops) gives them at most 4 ulp, and an ulp is at most 2u of the result.
LIBM_ULPS = 4
_LIBM = 2 * LIBM_ULPS * UNIT_ROUNDOFF
_TINY = LIBM_ULPS * 2.0**-149  # an ulp where the result is subnormal


def sigmoid(layer: Layer, before: np.ndarray, row: int, col: int, depth: int) -> dict[str, Any]:
    """input_value x: value = 1 / (1 + exp(-x)). The layer computes e = exp(-|x|) (libm's
    error), then 1 / (1 + e) or e / (1 + e): two roundings more, relative to the value."""
    x = float(before[row, col, depth])
    value = float(1 / (1 + np.exp(-x))) if x >= 0 else float(np.exp(x) / (1 + np.exp(x)))
    return {
        "rows": [row, row + 1],
        "cols": [col, col + 1],
        "input_value": x,
        "value": value,
        "tolerance": (2 * _LIBM + _gamma(3)) * value + _TINY,
    }


def tanh(layer: Layer, before: np.ndarray, row: int, col: int, depth: int) -> dict[str, Any]:
    """input_value x: value = tanh(x), within libm's error of float32 tanh."""
    x = float(before[row, col, depth])
    value = float(np.tanh(x))
    return {
        "rows": [row, row + 1],
        "cols": [col, col + 1],
        "input_value": x,
        "value": value,
        "tolerance": (_LIBM + UNIT_ROUNDOFF) * abs(value) + _TINY,
    }


def flatten(layer: Layer, before: np.ndarray, row: int, col: int, depth: int) -> dict[str, Any]:
    """source [r, c, d]: the place of `before` this number is copied from, depth-major as
    torch.flatten on NCHW (depth = d * H * W + r * W + c): value = before[r, c, d], exactly."""
    h, w, c = before.shape
    d, r, cc = (int(i) for i in np.unravel_index(depth, (c, h, w)))
    return {
        "rows": [r, r + 1],
        "cols": [cc, cc + 1],
        "source": [r, cc, d],
        "value": float(before[r, cc, d]),
        "tolerance": 0.0,
    }


def logsoftmax(layer: Layer, before: np.ndarray, row: int, col: int, depth: int) -> dict[str, Any]:
    """logits, max (the largest logit), exps = exp(logits - max), sum = sum(exps),
    logsumexp = max + log(sum): value = logits[depth] - logsumexp (<= 0).

    The layer rounds each logit - max (u per unit of the logits' span), takes exp (libm's
    error) and sums n terms (gamma_n relative), takes log (libm's error of log(sum) <=
    log n) and subtracts twice: the first-order bound, doubled for the second order."""
    logits = before[row, col, :].astype(np.float64)
    top = float(logits.max())
    exps = np.exp(logits - top)
    total = float(exps.sum())
    logsumexp = top + float(np.log(total))
    value = float(logits[depth]) - logsumexp
    n, span = logits.size, top - float(logits.min())
    first = UNIT_ROUNDOFF * 2 * span + _LIBM + _gamma(n) + _LIBM * np.log(total)
    return {
        "rows": [row, row + 1],
        "cols": [col, col + 1],
        "logits": logits,
        "max": top,
        "exps": exps,
        "sum": total,
        "logsumexp": logsumexp,
        "value": value,
        "tolerance": 2 * (first + 2 * UNIT_ROUNDOFF * abs(value)),
    }


def _sample(
    volume: np.ndarray,
    r0: int,
    c0: int,
    kernel: tuple[int, int],
    dilation: tuple[int, int] = (1, 1),
    channels: Any = slice(None),
    fill: float = 0.0,
) -> np.ndarray:
    """The (KH, KW, channels) numbers a window at (r0, c0) reads: volume[r0 + i * dh,
    c0 + j * dw, channels] in float64, `fill` where that place is off the volume's edges."""
    h, w, _ = volume.shape
    rows = r0 + dilation[0] * np.arange(kernel[0])
    cols = c0 + dilation[1] * np.arange(kernel[1])
    inside_r, inside_c = (rows >= 0) & (rows < h), (cols >= 0) & (cols < w)
    picked = volume[:, :, channels].astype(np.float64)
    if picked.ndim == 2:
        picked = picked[:, :, None]
    out = np.full((kernel[0], kernel[1], picked.shape[2]), fill, np.float64)
    out[np.ix_(inside_r, inside_c)] = picked[np.ix_(rows[inside_r], cols[inside_c])]
    return out


EXPLAIN = {
    "conv": conv,
    "relu": relu,
    "pool": pool,
    "fc": fc,
    "softmax": softmax,
    "conv2d": conv2d,
    "maxpool": maxpool,
    "avgpool": avgpool,
    "gap": gap,
    "batchnorm": batchnorm,
    "leakyrelu": leakyrelu,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "flatten": flatten,
    "logsoftmax": logsoftmax,
}
