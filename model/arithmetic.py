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
    window = _window(before, r0, c0, k, k).astype(np.float64)
    weights = layer.params["weight"][depth].transpose(1, 2, 0).astype(np.float64)
    bias = float(layer.params["bias"][depth])
    products = window * weights
    channel_sums = products.sum(axis=(0, 1))
    n = products.size + 1
    return {
        "rows": [r0, r0 + k],
        "cols": [c0, c0 + k],
        "window": window,
        "weights": weights,
        "bias": bias,
        "channel_sums": channel_sums,
        "value": bias + float(channel_sums.sum()),
        "tolerance": _gamma(n) * (abs(bias) + float(np.abs(products).sum())),
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
    window = before[r0 : r0 + k, c0 : c0 + k, depth].astype(np.float64)
    r, c = np.unravel_index(int(np.argmax(window)), window.shape)
    return {
        "rows": [r0, r0 + k],
        "cols": [c0, c0 + k],
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


def _window(volume: np.ndarray, r0: int, c0: int, kh: int, kw: int) -> np.ndarray:
    """volume[r0 : r0 + kh, c0 : c0 + kw, :] with zeros where the window runs past the edges."""
    h, w, c = volume.shape
    out = np.zeros((kh, kw, c), volume.dtype)
    top, left = max(r0, 0), max(c0, 0)
    bottom, right = min(r0 + kh, h), min(c0 + kw, w)
    if bottom > top and right > left:
        out[top - r0 : bottom - r0, left - c0 : right - c0] = volume[top:bottom, left:right]
    return out


EXPLAIN = {"conv": conv, "relu": relu, "pool": pool, "fc": fc, "softmax": softmax}
