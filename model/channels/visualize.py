"""Feature visualisation: an input image that makes one channel fire, by gradient ascent
through the network's own backward pass (Olah, Mordvintsev and Schubert, "Feature
Visualization", Distill 2017; the recipe is Lucid's).

The image is not optimised pixel by pixel, which gives high-frequency noise that excites
the channel but shows nothing. Instead, as in Lucid:

- it is a Fourier spectrum scaled by 1 / frequency (Lucid's fft_image), so every frequency
  moves at the same pace and the image stays smooth;
- its colours are decorrelated: the spectrum makes three decorrelated channels, mixed into
  RGB by the square root of natural images' colour covariance (Lucid's matrix), then a
  sigmoid maps them into 0..1;
- every step sees it slightly jittered, scaled and rotated (one bilinear warp), so only
  features that survive small transformations grow: for 32- and 28-pixel inputs the
  ranges are Lucid's scaled down from 224 pixels;
- Adam climbs the channel's mean activation over its positions.

Every channel climbs its own mean, relu and pool channels included: climbing the conv
channel before them instead would also push up the negative values their ReLU discards,
which cost cifar10's relu2 and pool1 most of their activation (BENCHMARKS.md). A ReLU off at
every position passes no gradient (near the grey start); such a step follows the gradient
of that conv channel (`fallback_layer`) instead.
The activation reported is always that of the requested layer, on the final image rounded
to 8 bits, exactly as it would be if that PNG were fed to the network.

Everything random comes from one seeded generator and BLAS runs on one thread, so a seed
gives the same bytes every time.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from threadpoolctl import threadpool_limits

from model.layers import Conv, _im2col
from model.network import Network

# Lucid's colour_correlation_svd_sqrt (ImageNet), columns normalised to at most 1.
_COLOR_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
COLOR_MIX = _COLOR_SQRT / np.max(np.linalg.norm(_COLOR_SQRT, axis=0))

# Part of every cache key: raised when the same settings make other pictures. 2: relu and
# pool channels climb their own mean, no longer their conv channel's.
RECIPE = 2


@dataclass(frozen=True)
class VisSettings:
    """Everything that decides the image; `key()` names a cache entry for them."""

    steps: int = 256
    seed: int = 0
    learning_rate: float = 0.2  # Lucid: 0.05 at 224 px; 0.2 climbs higher at 32 px (BENCHMARKS.md)
    decay_power: float = 1.0
    decorrelate: bool = True
    jitter: float = 2.0  # pixels, each way
    scale: float = 0.05  # +- fraction
    rotate: float = 5.0  # +- degrees
    frame_every: int = 8

    def key(self) -> str:
        text = json.dumps(asdict(self) | {"recipe": RECIPE}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class Visualization:
    """image (H, W, C) uint8; frames (F, H, W, C) uint8 at frame_steps, the last being the
    image; activations: the channel's mean activation on each frame; start_activation on
    the random start."""

    layer: int
    channel: int
    settings: VisSettings
    image: np.ndarray
    activation: float
    start_activation: float
    frames: np.ndarray = field(repr=False)
    frame_steps: list[int] = field(default_factory=list)
    frame_activations: list[float] = field(default_factory=list)

    def thinned(self, count: int) -> Visualization:
        """The same result with at most `count` frames (count >= 2): the first, the last
        and, between them, those nearest steps last/2, last/4, ...: the image changes most
        early in the ascent, so halving steps keep the replay's story in a few frames."""
        if count < 2:
            raise ValueError("a replay needs at least the first and the last frame")
        steps = np.array(self.frame_steps)
        kept = {0, len(steps) - 1}
        target = float(steps[-1])
        while len(kept) < min(count, len(steps)):
            target /= 2
            if target < steps[1] / 2:
                break
            kept.add(int(np.argmin(np.abs(steps - target))))
        kept = sorted(kept)
        return replace(
            self,
            frames=self.frames[kept],
            frame_steps=[self.frame_steps[k] for k in kept],
            frame_activations=[self.frame_activations[k] for k in kept],
        )


def weights_sha256(net: Network) -> str:
    """sha256 over the network's parameters (names, dtypes, shapes, bytes), in order:
    the same for the same weights however they were stored."""
    digest = hashlib.sha256()
    for name, value in net.state_dict().items():
        value = np.ascontiguousarray(value)
        digest.update(f"{name}:{value.dtype.str}:{value.shape};".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def visualize(
    net: Network,
    layer: int,
    channel: int,
    settings: VisSettings = VisSettings(),
    on_frame: Callable[[int, np.ndarray, float], None] | None = None,
) -> Visualization:
    """Climb the mean activation of `channel` of layer `layer`; on_frame(step, image uint8,
    activation) is called at every frame as it is made."""
    h, w, c = net.input_shape
    target = net.layers[layer]
    if not 0 <= channel < target.output_shape[2]:
        raise ValueError(f"layer {target.name} has no channel {channel}")
    fallback = fallback_layer(net, layer)
    rng = np.random.default_rng(settings.seed)
    fourier = FourierImage(h, w, c, settings.decay_power)
    params = rng.standard_normal(fourier.shape) * 0.01
    mix = COLOR_MIX if settings.decorrelate and c == 3 else np.eye(c)
    mean = np.asarray(net.normalization["mean"], np.float64)
    std = np.asarray(net.normalization["std"], np.float64)
    pad = mean / 255  # outside the image: the colour the network pads with
    adam = _Adam(params.shape, settings.learning_rate)
    frames, steps, activations = [], [], []

    def frame(step: int, pixels01: np.ndarray) -> float:
        image = _to_uint8(pixels01)
        value = _mean_activation(net, layer, channel, image)
        frames.append(image)
        steps.append(step)
        activations.append(value)
        if on_frame:
            on_frame(step, image, value)
        return value

    with threadpool_limits(1, user_api="blas"):
        pixels = _sigmoid(fourier.forward(params) @ mix.T)
        start = frame(0, pixels)
        for step in range(1, settings.steps + 1):
            linear = fourier.forward(params) @ mix.T
            pixels = _sigmoid(linear)
            warp = Warp.random(h, w, settings, rng)
            x = (warp.forward(pixels, pad) * 255 - mean) / std
            x = x.astype(net.dtype)[None]
            dx = _channel_gradient(net, layer, channel, x)[0]
            if fallback != layer and not dx.any():
                dx = _channel_gradient(net, fallback, channel, x)[0]
            dpixels = warp.backward(dx.astype(np.float64) * 255 / std)
            dlinear = dpixels * pixels * (1 - pixels)
            grad = fourier.backward(dlinear @ mix)
            params += adam.step(grad)  # ascent
            if step % settings.frame_every == 0 or step == settings.steps:
                frame(step, _sigmoid(fourier.forward(params) @ mix.T))
    return Visualization(
        layer,
        channel,
        settings,
        frames[-1],
        activations[-1],
        start,
        np.stack(frames),
        steps,
        activations,
    )


def fallback_layer(net: Network, layer: int) -> int:
    """The layer whose channel's gradient a step follows where `layer`'s is zero: the conv
    before a relu or pool, else the layer itself."""
    if net.layers[layer].kind in ("relu", "pool"):
        for i in range(layer, -1, -1):
            if net.layers[i].kind == "conv":
                return i
    return layer


def _mean_activation(net: Network, layer: int, channel: int, image: np.ndarray) -> float:
    x = net.preprocess(image[None])
    for current in net.layers[: layer + 1]:
        x = current.forward(x)
    return float(x[0, :, :, channel].mean())


def _channel_gradient(net: Network, layer: int, channel: int, x: np.ndarray) -> np.ndarray:
    """d mean(channel of layer) / d input, through each layer's backward pass (for conv
    layers only the input's gradient: the weights' is not needed here)."""
    caches = []
    for current in net.layers[: layer + 1]:
        if isinstance(current, Conv):
            caches.append(x.shape)
            x = current.forward(x)
        else:
            x, cache = current.forward_train(x)
            caches.append(cache)
    dout = np.zeros_like(x)
    dout[..., channel] = 1.0 / (x.shape[1] * x.shape[2])
    for current, cache in zip(net.layers[layer::-1], caches[::-1], strict=True):
        if isinstance(current, Conv):
            dout = _conv_input_gradient(current, dout, cache)
        else:
            dout, _ = current.backward(dout, cache)
    return dout


def _conv_input_gradient(conv: Conv, dout: np.ndarray, x_shape: tuple[int, ...]) -> np.ndarray:
    """A conv layer's input gradient: the full convolution of dout with the flipped filters
    (stride 1), or the layer's own backward pass otherwise."""
    n, h, w, c = x_shape
    k, p = conv.size, conv.pad
    if conv.stride == 1 and p <= k - 1:
        flipped = conv.params["weight"][:, :, ::-1, ::-1].transpose(2, 3, 0, 1)
        dx = _im2col(dout, k, 1, k - 1 - p, h, w) @ flipped.reshape(-1, c)
        return dx.reshape(n, h, w, c)
    x = np.zeros(x_shape, dout.dtype)  # the input gradient does not depend on the input
    _, cache = conv.forward_train(x)
    return conv.backward(dout, cache)[0]


class FourierImage:
    """An (H, W, C) image from real parameters (C, 2, H, W // 2 + 1): the real and
    imaginary parts of its spectrum, scaled by 1 / frequency ** decay (Lucid's fft_image).
    backward is the exact adjoint of forward (tests check it by finite differences)."""

    def __init__(self, h: int, w: int, c: int, decay_power: float = 1.0):
        self.h, self.w, self.c = h, w, c
        fy = np.fft.fftfreq(h)[:, None]
        fx = np.fft.rfftfreq(w)[None, :]
        freqs = np.sqrt(fx * fx + fy * fy)
        self.scale = np.sqrt(h * w) / np.maximum(freqs, 1.0 / max(h, w)) ** decay_power
        # irfft2 counts each column of the half spectrum twice, but the first (and the last
        # for an even width) once.
        self.counts = np.full(w // 2 + 1, 2.0)
        self.counts[0] = 1.0
        if w % 2 == 0:
            self.counts[-1] = 1.0

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return self.c, 2, self.h, self.w // 2 + 1

    def forward(self, params: np.ndarray) -> np.ndarray:
        spectrum = (params[:, 0] + 1j * params[:, 1]) * self.scale
        image = np.fft.irfft2(spectrum, s=(self.h, self.w)) / 4.0
        return image.transpose(1, 2, 0)

    def backward(self, dimage: np.ndarray) -> np.ndarray:
        g = np.fft.rfft2(dimage.transpose(2, 0, 1)) * (self.counts / (self.h * self.w))
        g = g * self.scale / 4.0
        return np.stack([g.real, g.imag], axis=1)


class Warp:
    """One bilinear resampling of an (H, W, C) image: rotated, scaled and shifted about its
    centre. Where the source point lies outside, the pad colour is read; backward sends
    each output's gradient back to the four pixels it mixed."""

    def __init__(self, h: int, w: int, angle: float, scale: float, shift: tuple[float, float]):
        self.h, self.w = h, w
        cy, cx = (h - 1) / 2, (w - 1) / 2
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
        sy = cos * (yy - cy) - sin * (xx - cx) + cy + shift[0]
        sx = sin * (yy - cy) + cos * (xx - cx) + cx + shift[1]
        y0, x0 = np.floor(sy), np.floor(sx)
        fy, fx = sy - y0, sx - x0
        index, weight = [], []
        for dy, wy in ((0, 1 - fy), (1, fy)):
            for dx, wx in ((0, 1 - fx), (1, fx)):
                y, x = y0 + dy, x0 + dx
                inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
                index.append((np.clip(y, 0, h - 1) * w + np.clip(x, 0, w - 1)).astype(np.intp))
                weight.append(np.where(inside, wy * wx, 0.0))
        self.index = np.stack(index).reshape(4, -1)
        self.weight = np.stack(weight).reshape(4, -1)
        self.outside = 1.0 - self.weight.sum(axis=0)

    @classmethod
    def random(cls, h: int, w: int, settings: VisSettings, rng: np.random.Generator) -> Warp:
        angle = math.radians(rng.uniform(-settings.rotate, settings.rotate))
        scale = 1.0 + rng.uniform(-settings.scale, settings.scale)
        shift = tuple(rng.uniform(-settings.jitter, settings.jitter, 2))
        return cls(h, w, angle, scale, shift)

    def forward(self, image: np.ndarray, pad: np.ndarray) -> np.ndarray:
        flat = image.reshape(-1, image.shape[2])
        out = np.einsum("kp,kpc->pc", self.weight, flat[self.index])
        out += self.outside[:, None] * pad
        return out.reshape(self.h, self.w, -1)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        c = dout.shape[2]
        flat = dout.reshape(-1, c)
        size = self.h * self.w
        dimage = np.empty((size, c))
        for channel in range(c):
            weights = (self.weight * flat[:, channel]).ravel()
            dimage[:, channel] = np.bincount(self.index.ravel(), weights, minlength=size)
        return dimage.reshape(self.h, self.w, c)


class _Adam:
    def __init__(self, shape: tuple[int, ...], lr: float, betas=(0.9, 0.999), eps=1e-8):
        self.lr, self.betas, self.eps = lr, betas, eps
        self.m, self.v = np.zeros(shape), np.zeros(shape)
        self.t = 0

    def step(self, grad: np.ndarray) -> np.ndarray:
        b1, b2 = self.betas
        self.t += 1
        self.m = b1 * self.m + (1 - b1) * grad
        self.v = b2 * self.v + (1 - b2) * grad * grad
        m_hat = self.m / (1 - b1**self.t)
        v_hat = self.v / (1 - b2**self.t)
        return self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _to_uint8(pixels01: np.ndarray) -> np.ndarray:
    return np.clip(np.round(pixels01 * 255), 0, 255).astype(np.uint8)
