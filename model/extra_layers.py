"""The layer kinds that imported networks (model/onnx_import.py) need beyond the shipped ones.

Same contract as model/layers.py: volumes (N, H, W, D), parameters in PyTorch's layout,
``forward_train -> (out, cache)`` and ``backward(dout, cache) -> (dx, grads)``. The shipped
kinds (conv, relu, pool, fc, softmax) stay as they are, with their fast paths; these are
the general forms, used only where an imported layer does not fit a shipped kind:

    conv2d      any kernel (KH x KW), stride, asymmetric padding, dilation; groups 1 or
                depthwise (groups = input depth, each input channel -> `filters / C` outputs)
    maxpool     any kernel, stride, asymmetric padding, ceil_mode
    avgpool     the same, with or without the padding counted in the divisor
    gap         global average pool: (H, W, D) -> (1, 1, D)
    batchnorm   y = (x - running_mean) / sqrt(running_var + eps) * weight + bias, with the
                statistics frozen (imported networks are looked at, not trained)
    leakyrelu, sigmoid, tanh, flatten, logsoftmax

Padding is given as [top, left, bottom, right]; ceil_mode follows PyTorch (and ONNX
Runtime): the output rounds up, but a window that would start inside the bottom or right
padding is dropped.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from model.layers import Layer, Params, ReceptiveField, Shape, register


def _pair(value: int | list[int] | tuple[int, ...]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    a, b = value
    return int(a), int(b)


def _pads(value: int | list[int] | tuple[int, ...]) -> tuple[int, int, int, int]:
    if isinstance(value, int):
        return value, value, value, value
    top, left, bottom, right = (int(v) for v in value)
    return top, left, bottom, right


def _window_out(size: int, kernel: int, stride: int, before: int, after: int, ceil: bool) -> int:
    span = size + before + after - kernel
    if span < 0:
        return 0
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= size + before:
        out -= 1  # the last window would start in the padding
    return out


def _pad_to(x: np.ndarray, top: int, left: int, height: int, width: int, fill: float):
    """x (N, H, W, C) placed at (top, left) in a (N, height, width, C) array of `fill`."""
    n, h, w, c = x.shape
    if (top, left, height, width) == (0, 0, h, w):
        return x
    out = np.full((n, height, width, c), fill, dtype=x.dtype)
    out[:, top : top + h, left : left + w] = x[:, : height - top, : width - left]
    return out


class _Windowed(Layer):
    """Shared geometry of sliding-window layers: kernel, stride, pads, dilation, ceil."""

    def __init__(
        self,
        name: str,
        input_shape: Shape,
        kernel: int | list[int],
        stride: int | list[int] = 1,
        pads: int | list[int] = 0,
        dilation: int | list[int] = 1,
        ceil_mode: bool = False,
    ):
        super().__init__(name, input_shape)
        self.kernel, self.stride = _pair(kernel), _pair(stride)
        self.pads, self.dilation = _pads(pads), _pair(dilation)
        self.ceil_mode = bool(ceil_mode)
        h, w, _ = self.input_shape
        kh, kw = self.span
        top, left, bottom, right = self.pads
        self.out_hw = (
            _window_out(h, kh, self.stride[0], top, bottom, self.ceil_mode),
            _window_out(w, kw, self.stride[1], left, right, self.ceil_mode),
        )
        if min(self.out_hw) < 1 or min(self.kernel + self.stride + self.dilation) < 1:
            raise ValueError(
                f"{name}: a {self.kernel[0]}x{self.kernel[1]} window with stride {self.stride} "
                f"and pads {list(self.pads)} does not fit a {h}x{w} input"
            )
        if min(self.pads) < 0:
            raise ValueError(f"{name}: negative padding {list(self.pads)} is not supported")

    @property
    def span(self) -> tuple[int, int]:
        """The kernel's extent on the input, dilation included."""
        (kh, kw), (dh, dw) = self.kernel, self.dilation
        return (kh - 1) * dh + 1, (kw - 1) * dw + 1

    @property
    def padded_hw(self) -> tuple[int, int]:
        """The padded input every window reads from, including ceil_mode's overhang."""
        (ho, wo), (sh, sw), (kh, kw) = self.out_hw, self.stride, self.span
        return (ho - 1) * sh + kh, (wo - 1) * sw + kw

    def _padded(self, x: np.ndarray, fill: float = 0.0) -> np.ndarray:
        top, left, _, _ = self.pads
        return _pad_to(x, top, left, *self.padded_hw, fill)

    def _unpad(self, dx_padded: np.ndarray) -> np.ndarray:
        top, left, _, _ = self.pads
        h, w, _ = self.input_shape
        n, hp, wp, c = dx_padded.shape
        if hp - top < h or wp - left < w:  # the windows never reach the last rows/columns
            full = np.zeros((n, max(hp, top + h), max(wp, left + w), c), dx_padded.dtype)
            full[:, :hp, :wp] = dx_padded
            dx_padded = full
        return dx_padded[:, top : top + h, left : left + w]

    def _offsets(self):
        """(i, j, slices) for each kernel offset: the padded input each offset reads."""
        (ho, wo), (sh, sw), (dh, dw) = self.out_hw, self.stride, self.dilation
        for i in range(self.kernel[0]):
            for j in range(self.kernel[1]):
                r, c = i * dh, j * dw
                yield (
                    i,
                    j,
                    (
                        slice(None),
                        slice(r, r + (ho - 1) * sh + 1, sh),
                        slice(c, c + (wo - 1) * sw + 1, sw),
                    ),
                )

    def receptive_field(self, before: ReceptiveField) -> ReceptiveField:
        # Square fields only: the height direction speaks for both.
        return before.through(self.span[0], self.stride[0], self.pads[0])

    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "kernel": list(self.kernel),
            "stride": list(self.stride),
            "pads": list(self.pads),
            "dilation": list(self.dilation),
            "ceil_mode": self.ceil_mode,
        }

    def _geometry(self) -> str:
        """' /2', ' /2x1', ' dilation 2': what differs from a plain stride-1 window."""
        text = ""
        if self.stride != (1, 1):
            sh, sw = self.stride
            text += f" /{sh}" if sh == sw else f" /{sh}x{sw}"
        if self.dilation != (1, 1):
            dh, dw = self.dilation
            text += f" dilation {dh}" if dh == dw else f" dilation {dh}x{dw}"
        return text


class Conv2D(_Windowed):
    """Convolution in general: KH x KW kernels, stride, [top, left, bottom, right] padding,
    dilation; groups 1 (weight (F, C, KH, KW)) or depthwise (groups = C, weight
    (F, 1, KH, KW), output channel f reads input channel f // (F / C)). bias (F,).
    """

    kind = "conv2d"

    def __init__(
        self,
        name: str,
        input_shape: Shape,
        filters: int,
        kernel: int | list[int],
        stride: int | list[int] = 1,
        pads: int | list[int] = 0,
        dilation: int | list[int] = 1,
        groups: int = 1,
    ):
        super().__init__(name, input_shape, kernel, stride, pads, dilation)
        c = self.input_shape[2]
        self.filters, self.groups = filters, groups
        if groups not in (1, c) or filters % groups:
            raise ValueError(
                f"{name}: groups {groups} over {c} channels into {filters} filters; "
                "only groups 1 and depthwise (groups = input channels) are supported"
            )
        kh, kw = self.kernel
        self.params = {
            "weight": np.zeros((filters, c // groups, kh, kw), np.float32),
            "bias": np.zeros(filters, np.float32),
        }

    @property
    def output_shape(self) -> Shape:
        return *self.out_hw, self.filters

    def config(self) -> dict[str, Any]:
        config = super().config()
        del config["ceil_mode"]
        return {**config, "filters": self.filters, "groups": self.groups}

    # --- groups = 1: im2col over dilated windows ----------------------------------------

    def _columns(self, x: np.ndarray) -> np.ndarray:
        xp = self._padded(x)
        (ho, wo), (sh, sw), (dh, dw), (kh, kw) = (
            self.out_hw,
            self.stride,
            self.dilation,
            self.kernel,
        )
        sn, s_h, s_w, sc = xp.strides
        n, c = xp.shape[0], xp.shape[3]
        view = as_strided(
            xp,
            shape=(n, ho, wo, kh, kw, c),
            strides=(sn, s_h * sh, s_w * sw, s_h * dh, s_w * dw, sc),
            writeable=False,
        )
        return view.reshape(n * ho * wo, kh * kw * c)

    def _matrix(self) -> np.ndarray:
        return self.params["weight"].transpose(2, 3, 1, 0).reshape(-1, self.filters)

    # --- depthwise: one multiply-add per kernel offset ----------------------------------

    def _source_channels(self) -> np.ndarray | slice:
        c = self.input_shape[2]
        per = self.filters // c
        return slice(None) if per == 1 else np.repeat(np.arange(c), per)

    def forward_train(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        n = x.shape[0]
        ho, wo, f = self.output_shape
        if self.groups == 1:
            cols = self._columns(x)
            out = cols @ self._matrix()
            out += self.params["bias"]
            return out.reshape(n, ho, wo, f), (x.shape, cols)
        xp = self._padded(x)[..., self._source_channels()]
        weight = self.params["weight"]
        out = np.zeros((n, ho, wo, f), np.result_type(x, weight))
        for i, j, window in self._offsets():
            out += xp[window] * weight[:, 0, i, j]
        out += self.params["bias"]
        return out, (x.shape, xp)

    def backward(self, dout: np.ndarray, cache: Any) -> tuple[np.ndarray, Params]:
        x_shape, saved = cache
        n, _, _, c = x_shape
        ho, wo, f = self.output_shape
        kh, kw = self.kernel
        hp, wp = self.padded_hw
        weight = self.params["weight"]
        dx_padded = np.zeros((n, hp, wp, c), dout.dtype)
        if self.groups == 1:
            rows = dout.reshape(-1, f)
            dweight = (rows.T @ saved).reshape(f, kh, kw, c).transpose(0, 3, 1, 2)
            dcols = (rows @ self._matrix().T).reshape(n, ho, wo, kh, kw, c)
            for i, j, window in self._offsets():
                dx_padded[window] += dcols[:, :, :, i, j]
        else:
            per = f // c
            dweight = np.zeros_like(weight)
            for i, j, window in self._offsets():
                dweight[:, 0, i, j] = np.einsum("nhwf,nhwf->f", dout, saved[window])
                contribution = dout * weight[:, 0, i, j]
                if per > 1:
                    contribution = contribution.reshape(n, ho, wo, c, per).sum(axis=-1)
                dx_padded[window] += contribution
        grads = {"weight": np.ascontiguousarray(dweight), "bias": dout.reshape(-1, f).sum(0)}
        return self._unpad(dx_padded), grads

    def __repr__(self) -> str:
        h, w, d = self.output_shape
        kh, kw = self.kernel
        depthwise = " depthwise" if self.groups > 1 else ""
        return f"CONV {kh}x{kw}x{self.filters}{self._geometry()}{depthwise} -> {h}x{w}x{d}"


class Pool2D(_Windowed):
    """Max or average over KH x KW windows, with stride, padding and ceil_mode; depth kept.

    Max: padding never wins (it is -infinity); where several inputs tie, the first
    (row-major in the window) gets the gradient, as in PyTorch. Average: the divisor is the
    number of input pixels in the window, or with `count_include_pad` the window's size
    clipped to the padded input (never counting ceil_mode's overhang), as in PyTorch.
    """

    kind = "maxpool"
    mode = "max"

    def __init__(
        self,
        name: str,
        input_shape: Shape,
        kernel: int | list[int],
        stride: int | list[int] | None = None,
        pads: int | list[int] = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = False,
    ):
        super().__init__(name, input_shape, kernel, stride or kernel, pads, 1, ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        if self.mode == "avg":
            self._divisor = self._count_divisor()

    @property
    def output_shape(self) -> Shape:
        return *self.out_hw, self.input_shape[2]

    def config(self) -> dict[str, Any]:
        config = super().config()
        del config["dilation"]
        if self.mode == "avg":
            config["count_include_pad"] = self.count_include_pad
        return config

    def _count_divisor(self) -> np.ndarray:
        """(1, HO, WO, 1): how many numbers each window averages."""
        h, w, _ = self.input_shape
        top, left, bottom, right = self.pads
        if self.count_include_pad:
            ones = np.ones((1, h + top + bottom, w + left + right, 1), np.float64)
            mask = _pad_to(ones, 0, 0, *self.padded_hw, 0.0)
        else:
            mask = self._padded(np.ones((1, h, w, 1), np.float64))
        count = np.zeros((1, *self.out_hw, 1))
        for _, _, window in self._offsets():
            count += mask[window]
        return np.maximum(count, 1)

    def forward_train(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        if self.mode == "max":
            xp = self._padded(x, -np.inf)
            offsets = self._offsets()
            out = xp[next(offsets)[2]].copy()
            for _, _, window in offsets:
                np.maximum(out, xp[window], out=out)
            return out, (xp, out)
        xp = self._padded(x)
        out = np.zeros((x.shape[0], *self.output_shape), x.dtype)
        for _, _, window in self._offsets():
            out += xp[window]
        out /= self._divisor.astype(x.dtype)
        return out, x.shape

    def backward(self, dout: np.ndarray, cache: Any) -> tuple[np.ndarray, Params]:
        if self.mode == "max":
            xp, out = cache
            dx_padded = np.zeros(xp.shape, dout.dtype)
            unclaimed = np.ones(out.shape, bool)
            for _, _, window in self._offsets():
                winner = (xp[window] == out) & unclaimed
                dx_padded[window] += dout * winner
                unclaimed &= ~winner
            return self._unpad(dx_padded), {}
        n, _, _, c = cache
        dx_padded = np.zeros((n, *self.padded_hw, c), dout.dtype)
        share = dout / self._divisor.astype(dout.dtype)
        for _, _, window in self._offsets():
            dx_padded[window] += share
        return self._unpad(dx_padded), {}

    def __repr__(self) -> str:
        h, w, d = self.output_shape
        label = "POOL" if self.mode == "max" else "AVGPOOL"
        ceil = " ceil" if self.ceil_mode else ""
        kh, kw = self.kernel
        return f"{label} {kh}x{kw}{self._geometry()}{ceil} -> {h}x{w}x{d}"


class AvgPool2D(Pool2D):
    kind = "avgpool"
    mode = "avg"


class GlobalAvgPool(Layer):
    """The mean of each depth slice: (N, H, W, D) -> (N, 1, 1, D)."""

    kind = "gap"

    @property
    def output_shape(self) -> Shape:
        return 1, 1, self.input_shape[2]

    def receptive_field(self, before: ReceptiveField) -> ReceptiveField:
        h, w, _ = self.input_shape
        return before.through(max(h, w), 1, 0)

    def forward_train(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        return x.mean(axis=(1, 2), keepdims=True), x.shape

    def backward(self, dout: np.ndarray, cache: Any) -> tuple[np.ndarray, Params]:
        n, h, w, d = cache
        return np.broadcast_to(dout / (h * w), (n, h, w, d)).copy(), {}

    def __repr__(self) -> str:
        return f"GAP -> 1x1x{self.input_shape[2]}"


class BatchNorm(Layer):
    """Batch normalisation with frozen statistics, per depth slice:
    y = (x - running_mean) / sqrt(running_var + eps) * weight + bias.

    Parameters are PyTorch's BatchNorm2d state (weight, bias, running_mean, running_var);
    backward gives the gradient of each, the statistics included.
    """

    kind = "batchnorm"

    def __init__(self, name: str, input_shape: Shape, eps: float = 1e-5):
        super().__init__(name, input_shape)
        self.eps = float(eps)
        d = self.input_shape[2]
        self.params = {
            "weight": np.ones(d, np.float32),
            "bias": np.zeros(d, np.float32),
            "running_mean": np.zeros(d, np.float32),
            "running_var": np.ones(d, np.float32),
        }

    def config(self) -> dict[str, Any]:
        return {**super().config(), "eps": self.eps}

    def _inverse_std(self) -> np.ndarray:
        var = self.params["running_var"]
        return 1 / np.sqrt(var + var.dtype.type(self.eps))

    def forward_train(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        p = self.params
        inv = self._inverse_std()
        scale = p["weight"] * inv
        return x * scale + (p["bias"] - p["running_mean"] * scale), x

    def backward(self, dout: np.ndarray, cache: Any) -> tuple[np.ndarray, Params]:
        p, x = self.params, cache
        inv = self._inverse_std()
        centred = x - p["running_mean"]
        axes = (0, 1, 2)
        dweight = (dout * centred).sum(axes) * inv
        grads = {
            "weight": dweight,
            "bias": dout.sum(axes),
            "running_mean": -dout.sum(axes) * p["weight"] * inv,
            "running_var": -0.5 * dweight * p["weight"] * inv**2,
        }
        return dout * (p["weight"] * inv), grads

    def __repr__(self) -> str:
        h, w, d = self.output_shape
        return f"BATCHNORM -> {h}x{w}x{d}"


class LeakyReLU(Layer):
    """x where x > 0, alpha * x elsewhere."""

    kind = "leakyrelu"

    def __init__(self, name: str, input_shape: Shape, alpha: float = 0.01):
        super().__init__(name, input_shape)
        self.alpha = float(alpha)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "alpha": self.alpha}

    def forward_train(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        positive = x > 0
        return np.where(positive, x, x * x.dtype.type(self.alpha)), positive

    def backward(self, dout: np.ndarray, cache: Any) -> tuple[np.ndarray, Params]:
        return np.where(cache, dout, dout * dout.dtype.type(self.alpha)), {}


class Sigmoid(Layer):
    """1 / (1 + exp(-x)), elementwise, computed without overflow."""

    kind = "sigmoid"

    def forward_train(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        e = np.exp(-np.abs(x))
        out = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        return out, out

    def backward(self, dout: np.ndarray, cache: Any) -> tuple[np.ndarray, Params]:
        return dout * cache * (1 - cache), {}


class Tanh(Layer):
    kind = "tanh"

    def forward_train(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        out = np.tanh(x)
        return out, out

    def backward(self, dout: np.ndarray, cache: Any) -> tuple[np.ndarray, Params]:
        return dout * (1 - cache * cache), {}


class Flatten(Layer):
    """(N, H, W, D) -> (N, 1, 1, D * H * W), depth-major like torch.flatten on NCHW."""

    kind = "flatten"

    @property
    def output_shape(self) -> Shape:
        return 1, 1, int(np.prod(self.input_shape))

    def forward_train(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        return x.transpose(0, 3, 1, 2).reshape(x.shape[0], 1, 1, -1), x.shape

    def backward(self, dout: np.ndarray, cache: Any) -> tuple[np.ndarray, Params]:
        n, h, w, d = cache
        return dout.reshape(n, d, h, w).transpose(0, 2, 3, 1), {}

    def __repr__(self) -> str:
        return f"FLATTEN -> 1x1x{self.output_shape[2]}"


class LogSoftmax(Layer):
    """log(softmax(x)) along depth, computed as x - max - log(sum(exp(x - max)))."""

    kind = "logsoftmax"

    def forward_train(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        shifted = x - x.max(axis=-1, keepdims=True)
        out = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        return out, out

    def backward(self, dout: np.ndarray, cache: Any) -> tuple[np.ndarray, Params]:
        return dout - np.exp(cache) * dout.sum(axis=-1, keepdims=True), {}


EXTRA_KINDS = (
    Conv2D,
    Pool2D,
    AvgPool2D,
    GlobalAvgPool,
    BatchNorm,
    LeakyReLU,
    Sigmoid,
    Tanh,
    Flatten,
    LogSoftmax,
)
register(*EXTRA_KINDS)
