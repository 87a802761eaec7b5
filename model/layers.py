"""The layers of a ConvNet, each a forward/backward pair on batches of volumes.

Every volume is an array of shape (N, H, W, D): batch, height, width, depth.
Parameters use PyTorch's layout (conv weight (F, C, KH, KW), fc weight (out, in)) so
weights move to and from an ``nn.Sequential`` unchanged.

A layer keeps its parameters in ``params`` and nothing else between calls:
``forward_train`` returns ``(out, cache)`` and ``backward(dout, cache)`` returns
``(dx, grads)``, where ``grads`` has the same keys as ``params``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from model import winograd

Shape = tuple[int, int, int]
Params = dict[str, np.ndarray]


@dataclass(frozen=True)
class ReceptiveField:
    """Where one layer's neurons look on the input image.

    Neuron (row, col) of the layer is centred on input pixel
    ``(start + row * jump, start + col * jump)`` and sees ``size`` x ``size`` pixels.
    ``start`` can be fractional for even kernels.
    """

    size: int
    jump: int
    start: float

    def box(self, row: int, col: int, height: int, width: int) -> tuple[int, int, int, int]:
        """The input pixels neuron (row, col) sees, as (top, left, bottom, right), inclusive,
        clipped to an input of height x width."""
        half = (self.size - 1) / 2
        top = int(np.ceil(self.start + row * self.jump - half))
        left = int(np.ceil(self.start + col * self.jump - half))
        bottom, right = top + self.size - 1, left + self.size - 1
        return max(top, 0), max(left, 0), min(bottom, height - 1), min(right, width - 1)

    def through(self, size: int, stride: int, pad: int) -> ReceptiveField:
        """The receptive field after one more sliding-window layer."""
        return ReceptiveField(
            size=self.size + (size - 1) * self.jump,
            jump=self.jump * stride,
            start=self.start + ((size - 1) / 2 - pad) * self.jump,
        )


class Layer:
    """Base class: a named layer with no parameters that keeps the input's shape."""

    kind = "layer"

    def __init__(self, name: str, input_shape: Shape):
        self.name = name
        self.input_shape = tuple(input_shape)
        self.params: Params = {}

    @property
    def output_shape(self) -> Shape:
        return self.input_shape

    @property
    def param_count(self) -> int:
        return sum(p.size for p in self.params.values())

    def receptive_field(self, before: ReceptiveField) -> ReceptiveField:
        return before

    def config(self) -> dict[str, Any]:
        """The layer as a spec entry (JSON-ready)."""
        return {"kind": self.kind, "name": self.name}

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.forward_train(x)[0]

    def forward_train(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def backward(self, dout: np.ndarray, cache: Any) -> tuple[np.ndarray, Params]:
        raise NotImplementedError

    def __repr__(self) -> str:
        h, w, d = self.output_shape
        return f"{self.kind.upper()} -> {h}x{w}x{d}"


def _padded(x: np.ndarray, pad: int) -> np.ndarray:
    """Zero-pad height and width; np.pad is several times slower for this."""
    if pad == 0:
        return x
    n, h, w, c = x.shape
    out = np.zeros((n, h + 2 * pad, w + 2 * pad, c), dtype=x.dtype)
    out[:, pad : pad + h, pad : pad + w] = x
    return out


def _windows(x_pad: np.ndarray, kh: int, kw: int, stride: int, ho: int, wo: int) -> np.ndarray:
    """A view of shape (N, HO, WO, KH, KW, C): every sliding window, no copy."""
    sn, sh, sw, sc = x_pad.strides
    n, c = x_pad.shape[0], x_pad.shape[3]
    return as_strided(
        x_pad,
        shape=(n, ho, wo, kh, kw, c),
        strides=(sn, sh * stride, sw * stride, sh, sw, sc),
        writeable=False,
    )


def _im2col(x: np.ndarray, k: int, stride: int, pad: int, ho: int, wo: int) -> np.ndarray:
    """(N * HO * WO, K * K * C): one row per output position, (kh, kw, c) order."""
    cols = _windows(_padded(x, pad), k, k, stride, ho, wo)
    return cols.reshape(x.shape[0] * ho * wo, -1)


# Training computes 3x3, stride 1, padding 1 convolutions over at least this many input
# channels by Winograd (model/winograd.py): below, its tile transforms cost more than its
# fewer multiplications save (measured per layer: BENCHMARKS.md). Inference
# (forward) keeps im2col: one image is too few tiles to pay for transforming the filters.
WINOGRAD_MIN_CHANNELS = 32


def _out_size(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


class Conv(Layer):
    """Convolution: F filters of size KH x KW over all C input channels.

    weight (F, C, KH, KW), bias (F,). Input (N, H, W, C) -> output (N, HO, WO, F) with
    HO = (H + 2 * pad - KH) // stride + 1.

    Computed as one matrix product over im2col columns; in training, wide 3x3 same-size
    convolutions (forward, input and weight gradients) go by Winograd instead
    (WINOGRAD_MIN_CHANNELS, model/winograd.py).
    """

    kind = "conv"

    def __init__(
        self, name: str, input_shape: Shape, filters: int, size: int, stride: int = 1, pad: int = 0
    ):
        super().__init__(name, input_shape)
        h, w, c = self.input_shape
        self.filters, self.size, self.stride, self.pad = filters, size, stride, pad
        if _out_size(h, size, stride, pad) < 1 or _out_size(w, size, stride, pad) < 1:
            raise ValueError(
                f"{name}: a {size}x{size} kernel with pad {pad} does not fit a {h}x{w} input"
            )
        # (F, C, KH, KW) as PyTorch has it, laid out in memory as (KH, KW, C, F): then the
        # im2col weight matrix (KH * KW * C, F) is a view, not a copy on every forward
        # (a noticeable share of one image's forward: BENCHMARKS.md). Updates in place
        # keep the layout; an array put in its place still works, through a copy.
        self.params = {
            "weight": np.zeros((size, size, c, filters), np.float32).transpose(3, 2, 0, 1),
            "bias": np.zeros(filters, np.float32),
        }

    @property
    def output_shape(self) -> Shape:
        h, w, _ = self.input_shape
        s, st, p = self.size, self.stride, self.pad
        return _out_size(h, s, st, p), _out_size(w, s, st, p), self.filters

    def receptive_field(self, before: ReceptiveField) -> ReceptiveField:
        return before.through(self.size, self.stride, self.pad)

    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "filters": self.filters,
            "size": self.size,
            "stride": self.stride,
            "pad": self.pad,
        }

    def _weight_matrix(self) -> np.ndarray:
        """weight as (KH * KW * C, F), matching the (kh, kw, c) order of the im2col rows;
        a view of the weights in their own layout (see __init__)."""
        return self.params["weight"].transpose(2, 3, 1, 0).reshape(-1, self.filters)

    def _winograd(self, channels: int) -> bool:
        """Whether training convolves `channels` input channels by Winograd."""
        applies = winograd.applies(self.size, self.stride, self.pad)
        return applies and channels >= WINOGRAD_MIN_CHANNELS

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Inference: each image's im2col rows are multiplied by a product of their own
        (numpy's stacked matmul calls the BLAS once per image), so an image gets the very
        bits in a batch that it gets alone. One product of the whole batch's rows does not
        promise that: OpenBLAS 0.3.31's Haswell kernels on an AMD EPYC sum some rows of a
        larger product in another order. The same speed at batches of 1 to 256."""
        return self._forward_im2col(x, per_image=True)[0]

    def forward_train(self, x: np.ndarray, relu: bool = False) -> tuple[np.ndarray, Any]:
        """The output (max(0, output) if relu: see ConvReLU), and what backward needs: the
        input's shape, then either its im2col columns or, by Winograd, its transformed
        tiles."""
        if self._winograd(x.shape[3]):
            filters = winograd.transform_filters(self.params["weight"])
            out, tiles = winograd.conv3x3_keeping_tiles(x, filters, self.params["bias"], relu)
            return out, (x.shape, None, tiles)
        out, cols = self._forward_im2col(x)
        if relu:
            np.maximum(out, 0, out=out)
        return out, (x.shape, cols, None)

    def _forward_im2col(
        self, x: np.ndarray, per_image: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """The output and the im2col columns; per_image: one product per image's rows
        (see forward), else one over the whole batch's (training's, a little faster)."""
        n = x.shape[0]
        ho, wo, f = self.output_shape
        cols = _im2col(x, self.size, self.stride, self.pad, ho, wo)
        rows = cols.reshape(n, ho * wo, -1) if per_image else cols
        out = rows @ self._weight_matrix()
        out += self.params["bias"]
        return out.reshape(n, ho, wo, f), cols

    def backward(self, dout: np.ndarray | ChunkedGradient, cache: Any, need_dx: bool = True):
        """dx (None unless need_dx) and the gradients; dout may be computed a few images at
        a time (ConvReLU)."""
        x_shape, cols, tiles = cache
        n, h, w, c = x_shape
        ho, wo, f = self.output_shape
        k, s, p = self.size, self.stride, self.pad
        if tiles is not None:
            # Both gradients from the kept input tiles and dout's tiles.
            filters = winograd.transform_filters(self.params["weight"]) if need_dx else None
            dx, dweight, dbias = winograd.gradients(tiles, dout, filters)
            return dx, {"weight": dweight, "bias": dbias}
        if isinstance(dout, ChunkedGradient):
            dout = dout.whole()
        dout_rows = dout.reshape(-1, f)
        dweight = (dout_rows.T @ cols).reshape(f, k, k, c).transpose(0, 3, 1, 2)
        # A product with ones: a sum over the first axis is several times slower.
        dbias = np.ones(len(dout_rows), dout.dtype) @ dout_rows
        grads = {"weight": np.ascontiguousarray(dweight), "bias": dbias}
        if not need_dx:
            return None, grads
        if self._winograd(f):
            # The input's gradient by Winograd where the forward pass went by im2col: the
            # same full convolution as below, filters (C, F, 3, 3), flipped.
            turned = self.params["weight"][:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
            return winograd.conv3x3(dout, winograd.transform_filters(turned)), grads
        if s == 1 and p <= k - 1:
            # dx is the "full" convolution of dout with the flipped filters: one more
            # im2col + matrix product, about twice as fast as scattering columns back.
            flipped = self.params["weight"][:, :, ::-1, ::-1].transpose(2, 3, 0, 1)
            dx = _im2col(dout, k, 1, k - 1 - p, h, w) @ flipped.reshape(-1, c)
            return dx.reshape(n, h, w, c), grads
        dcols = (dout_rows @ self._weight_matrix().T).reshape(n, ho, wo, k, k, c)
        # col2im: each kernel offset adds its slab back where it was read from.
        dx = np.zeros((n, h + 2 * p, w + 2 * p, c), dtype=dout.dtype)
        for i in range(k):
            for j in range(k):
                dx[:, i : i + s * ho : s, j : j + s * wo : s] += dcols[:, :, :, i, j]
        return dx[:, p : p + h, p : p + w], grads

    def __repr__(self) -> str:
        h, w, d = self.output_shape
        return f"CONV {self.size}x{self.size}x{self.filters} -> {h}x{w}x{d}"


class ReLU(Layer):
    """max(0, x), elementwise."""

    kind = "relu"

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x, 0)

    def forward_train(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        out = np.maximum(x, 0)
        return out, out

    def backward(self, dout: np.ndarray, cache: Any) -> tuple[np.ndarray, Params]:
        # The gradient at exactly 0 is taken as 0, as PyTorch does.
        return dout * (cache > 0), {}


class MaxPool(Layer):
    """Max over size x size windows moved by stride; no padding.

    Where several inputs tie for the max, the first (row-major in the window) gets the
    gradient, as in PyTorch.
    """

    kind = "pool"

    def __init__(self, name: str, input_shape: Shape, size: int = 2, stride: int | None = None):
        super().__init__(name, input_shape)
        self.size, self.stride = size, stride or size
        h, w, _ = self.input_shape
        if h < size or w < size:
            raise ValueError(f"{name}: a {size}x{size} pool does not fit a {h}x{w} input")

    @property
    def output_shape(self) -> Shape:
        h, w, d = self.input_shape
        return _out_size(h, self.size, self.stride, 0), _out_size(w, self.size, self.stride, 0), d

    def receptive_field(self, before: ReceptiveField) -> ReceptiveField:
        return before.through(self.size, self.stride, 0)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "size": self.size, "stride": self.stride}

    def _offsets(self):
        ho, wo, _ = self.output_shape
        s = self.stride
        for i in range(self.size):
            for j in range(self.size):
                yield (slice(None), slice(i, i + s * ho, s), slice(j, j + s * wo, s))

    def forward(self, x: np.ndarray) -> np.ndarray:
        offsets = self._offsets()
        out = x[next(offsets)].copy()
        for window_slice in offsets:
            np.maximum(out, x[window_slice], out=out)
        return out

    def forward_train(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        out = self.forward(x)
        return out, (x, out)

    def backward(self, dout: np.ndarray, cache: Any) -> tuple[np.ndarray, Params]:
        x, _ = cache
        tiled = self.tiles(x.shape)
        dx = (np.empty if tiled else np.zeros)(x.shape, dtype=dout.dtype)
        for window_slice, winner in self._winners(cache):
            if tiled:  # each input written once
                np.multiply(dout, winner, out=dx[window_slice])
            else:
                dx[window_slice] += dout * winner
        return dx, {}

    def tiles(self, x_shape: tuple[int, ...]) -> bool:
        """Whether the windows neither overlap nor leave inputs of x_shape out."""
        ho, wo, _ = self.output_shape
        return self.stride == self.size and tuple(x_shape[1:3]) == (ho * self.size, wo * self.size)

    def backward_by_parity(self, dout: np.ndarray, cache: Any) -> np.ndarray:
        """For 2x2 windows that tile the input: backward's dx as its parity split
        (N, 2, HO, 2, WO, D), [:, i, :, j] = dx[:, i::2, j::2], each written whole."""
        x, _ = cache
        assert self.size == 2 and self.tiles(x.shape)
        n, ho, wo, d = dout.shape
        dx = np.empty((n, 2, ho, 2, wo, d), dout.dtype)
        for index, (_, winner) in enumerate(self._winners(cache)):
            np.multiply(dout, winner, out=dx[:, index // 2, :, index % 2])
        return dx

    def _winners(self, cache: Any):
        """(window slice, which of its inputs get the gradient) for each offset in the
        window, in order. Which input was the max is found again here rather than stored
        by forward: comparing is cheaper than keeping and scattering an argmax array."""
        x, out = cache
        offsets = list(self._offsets())
        unclaimed = None
        for index, window_slice in enumerate(offsets):
            winner = x[window_slice] == out
            if unclaimed is None:
                unclaimed = ~winner
            else:
                winner &= unclaimed
                if index < len(offsets) - 1:
                    unclaimed ^= winner  # winner is part of unclaimed: this removes it
            yield window_slice, winner

    def __repr__(self) -> str:
        h, w, d = self.output_shape
        return f"POOL {self.size}x{self.size}/{self.stride} -> {h}x{w}x{d}"


class ConvReLU:
    """A Conv, the ReLU after it and the max pool after that, if any, as one training step,
    with the same numbers as the layers one after the other. By Winograd, the ReLU is taken
    on each few images of the conv's output while they are in the cache, and the gradient
    is carried back through the pool and the ReLU's mask a few images at a time, as the
    conv's backward pass reads it (ChunkedGradient): no whole-batch gradient between them.
    Network.loss_and_scores trains every such run of layers this way."""

    def __init__(self, conv: Conv, relu: ReLU, pool: MaxPool | None = None):
        self.conv, self.relu, self.pool = conv, relu, pool
        self.name = conv.name  # the gradients are the conv's

    def forward_train(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        out, cache = self.conv.forward_train(x, relu=True)
        if self.pool is None:
            return out, (cache, out, None)
        pooled = self.pool.forward(out)
        return pooled, (cache, out, pooled)

    def backward(self, dout: np.ndarray, cache: Any, need_dx: bool = True):
        """dx (None unless need_dx) and the conv's gradients."""
        conv_cache, out, pooled = cache
        gradient = ChunkedGradient(dout, out, self.pool, pooled)
        return self.conv.backward(gradient, conv_cache, need_dx)


class ChunkedGradient:
    """The gradient of a ConvReLU's conv output, computed for a few images at a time when
    they are read: dout back through the max pool, if any, then through the ReLU's mask.
    Where the pool's maximum is 0 the ReLU let nothing through, so the mask is applied to
    the pooled gradient (a quarter of the pixels for 2x2).

    gradient[images] is (N, H, W, F), or behind a 2x2 pool that tiles its input, its
    parity split (N, 2, H / 2, 2, W / 2, F), [:, i, :, j] = [:, i::2, j::2]: the pool
    writes each window position whole and winograd.gradients reads them so, where the
    interleaved volume took a strided pass each way. whole() is the batch as a volume."""

    def __init__(self, dout, relu_out, pool: MaxPool | None = None, pooled=None):
        self.dout, self.relu_out, self.pool, self.pooled = dout, relu_out, pool, pooled
        self.shape, self.dtype = relu_out.shape, dout.dtype
        self.by_parity = pool is not None and pool.size == 2 and pool.tiles(relu_out.shape)

    def __getitem__(self, images: slice) -> np.ndarray:
        if self.pool is None:
            return self.dout[images] * (self.relu_out[images] > 0)
        pooled = self.pooled[images]
        dout = self.dout[images] * (pooled > 0)
        cache = (self.relu_out[images], pooled)
        if self.by_parity:
            return self.pool.backward_by_parity(dout, cache)
        return self.pool.backward(dout, cache)[0]

    def whole(self) -> np.ndarray:
        gradient = self[:]
        if gradient.ndim == 6:
            gradient = gradient.transpose(0, 2, 1, 4, 3, 5).reshape(self.shape)
        return gradient


class FC(Layer):
    """Fully connected: every output sees the whole input volume.

    weight (out, in), bias (out,). The input volume is flattened depth-major (D, H, W),
    like torch.flatten on an NCHW tensor. Output (N, 1, 1, out).
    """

    kind = "fc"

    def __init__(self, name: str, input_shape: Shape, units: int):
        super().__init__(name, input_shape)
        self.units = units
        fan_in = int(np.prod(self.input_shape))
        self.params = {
            "weight": np.zeros((units, fan_in), np.float32),
            "bias": np.zeros(units, np.float32),
        }

    @property
    def output_shape(self) -> Shape:
        return 1, 1, self.units

    def receptive_field(self, before: ReceptiveField) -> ReceptiveField:
        h, w, _ = self.input_shape
        return before.through(max(h, w), 1, 0)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "units": self.units}

    def forward_train(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        flat = x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)
        out = flat @ self.params["weight"].T + self.params["bias"]
        return out.reshape(-1, 1, 1, self.units), (x.shape, flat)

    def backward(self, dout: np.ndarray, cache: Any) -> tuple[np.ndarray, Params]:
        (n, h, w, d), flat = cache
        dout = dout.reshape(n, self.units)
        grads = {"weight": dout.T @ flat, "bias": dout.sum(axis=0)}
        dx = (dout @ self.params["weight"]).reshape(n, d, h, w).transpose(0, 2, 3, 1)
        return dx, grads

    def __repr__(self) -> str:
        return f"FC {self.units} -> 1x1x{self.units}"


class Softmax(Layer):
    """Class probabilities from scores, along depth."""

    kind = "softmax"

    def forward_train(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        out = softmax(x)
        return out, out

    def backward(self, dout: np.ndarray, cache: Any) -> tuple[np.ndarray, Params]:
        p = cache
        return p * (dout - (dout * p).sum(axis=-1, keepdims=True)), {}


def softmax(scores: np.ndarray) -> np.ndarray:
    """Softmax along the last axis, shifted by the max so exp never overflows."""
    shifted = scores - scores.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def softmax_cross_entropy(
    scores: np.ndarray, labels: np.ndarray, smoothing: float = 0.0
) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of softmax(scores) against integer labels, and d loss / d scores.

    scores: (N, C) or (N, 1, 1, C); labels: (N,) ints in [0, C). With label smoothing
    (Szegedy et al. 2016) the target is (1 - smoothing) on the label and smoothing / C on
    every class, so the loss stops rewarding ever larger logits.
    """
    shape = scores.shape
    scores = scores.reshape(shape[0], -1)
    n, classes = scores.shape
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    target = np.full_like(log_probs, smoothing / classes)
    target[np.arange(n), labels] += 1.0 - smoothing
    loss = -(target * log_probs).sum(axis=1).mean()
    dscores = (np.exp(log_probs) - target) / n
    return float(loss), dscores.reshape(shape)


LAYER_KINDS: dict[str, type[Layer]] = {cls.kind: cls for cls in (Conv, ReLU, MaxPool, FC, Softmax)}


def register(*classes: type[Layer]) -> None:
    """Add layer kinds to LAYER_KINDS (model/extra_layers.py adds the imported models')."""
    for cls in classes:
        LAYER_KINDS[cls.kind] = cls
