"""Why the network chose a class: attribution maps from the layers' own backward pass.

    x = net.preprocess(pixels[None])[0]                   # one input volume (H, W, D)
    result = attributions.saliency(net, x, target=3)
    result.values                                          # (H, W): where it mattered

Every method explains one class's *score*: the output of the layer before the softmax
(the fc layer's, a number before normalisation), not its probability, so that the
other classes do not leak into the explanation (Simonyan et al. 2014, section 3). Gradients
come from `layer.forward_train` and `layer.backward`, the same code that trains the
network; with one image per row of a batch, one backward pass gives every row's gradient.

Methods, each a function of (net, x, target, ...) returning an `Attribution`:

    saliency               |d score / d x|, max over channels         (H, W)
    smoothgrad             saliency averaged over noisy copies        (H, W)
    integrated_gradients   (x - x0) * mean gradient on the path       (H, W), signed
    gradcam                ReLU(sum_k alpha_k A^k) at a layer         (h, w) of that layer
    occlusion              drop of the probability under a grey patch (H, W), signed

A wrong target, layer or parameter raises AttributionError with a sentence for a person.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from model.layers import Layer, softmax
from model.network import Network

# Rows per batch through the network: bounds the memory of the caches to a few MB for
# cifar10 whatever `steps` or `samples` is asked for.
CHUNK = 32
# Layer kinds whose output is a volume Grad-CAM can weigh; fc and softmax are not.
NOT_SPATIAL = ("fc", "softmax")


class AttributionError(ValueError):
    """A request no method can answer (unknown target, wrong layer, bad parameter)."""


@dataclass
class Attribution:
    """One map and what it was computed from.

    values: (h, w) float64; score and probability: the target's, on x itself; extras:
    what the method adds (IG's baseline score and completeness gap, Grad-CAM's layer).
    """

    method: str
    target: int
    values: np.ndarray
    score: float
    probability: float
    extras: dict[str, Any] = field(default_factory=dict)


# --- the network as a function of its input ------------------------------------------------


def score_layer(net: Network) -> int:
    """Index of the layer whose output holds the class scores (the one before a softmax)."""
    last = len(net.layers) - 1
    return last - 1 if net.layers[last].kind == "softmax" and last > 0 else last


def check_target(net: Network, target: int) -> int:
    classes = net.layers[score_layer(net)].output_shape[2]
    if not 0 <= target < classes:
        names = f" ({', '.join(net.classes)})" if net.classes else ""
        raise AttributionError(
            f"{net.name} has classes 0 to {classes - 1}{names}; there is no class {target}."
        )
    return target


def _rows(x: np.ndarray, net: Network) -> np.ndarray:
    return np.asarray(x, net.dtype)


def forward_to(layers: list[Layer], x: np.ndarray) -> np.ndarray:
    """x (N, H, W, D) through `layers` (inference), the last one's output."""
    for layer in layers:
        x = layer.forward(x)
    return x


def scores_and_gradient(
    net: Network, x: np.ndarray, target: int, start: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Every row's class scores (N, classes) and d score[target] / d x (N, ...), where x is
    the input of layer `start` (0: the network's input)."""
    layers = net.layers[start : score_layer(net) + 1]
    caches = []
    out = x
    for layer in layers:
        out, cache = layer.forward_train(out)
        caches.append(cache)
    scores = out.reshape(len(out), -1)
    dout = np.zeros_like(out)
    dout[..., target] = 1  # each row's own score: rows do not mix, so one pass serves all
    for layer, cache in zip(reversed(layers), reversed(caches), strict=True):
        dout, _ = layer.backward(dout, cache)
    return scores, dout


def _gradients(net: Network, batch: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray]:
    """scores_and_gradient over a batch of any size, CHUNK rows at a time."""
    scores, grads = [], []
    for first in range(0, len(batch), CHUNK):
        s, g = scores_and_gradient(net, batch[first : first + CHUNK], target)
        scores.append(s)
        grads.append(g)
    return np.concatenate(scores), np.concatenate(grads)


def _probabilities(net: Network, scores: np.ndarray) -> np.ndarray:
    return softmax(scores.astype(np.float64))


def _score_and_probability(net: Network, x: np.ndarray, target: int) -> tuple[float, float]:
    scores = forward_to(net.layers[: score_layer(net) + 1], x[None]).reshape(1, -1)
    return float(scores[0, target]), float(_probabilities(net, scores)[0, target])


def _positive_int(name: str, value: int) -> int:
    if int(value) != value or value < 1:
        raise AttributionError(f"{name} must be a whole number of at least 1, got {value}.")
    return int(value)


# --- the methods ---------------------------------------------------------------------------


def saliency(net: Network, x: np.ndarray, target: int) -> Attribution:
    """Vanilla gradient saliency (Simonyan, Vedaldi and Zisserman 2014, "Deep Inside
    Convolutional Networks: Visualising Image Classification Models and Saliency Maps",
    section 3.1): |d score / d x|, reduced to one map by the maximum over the channels.

    x: (H, W, D) preprocessed input. values: (H, W), non-negative.
    """
    check_target(net, target)
    x = _rows(x, net)
    _, grad = scores_and_gradient(net, x[None], target)
    values = np.abs(grad[0]).max(axis=2).astype(np.float64)
    score, probability = _score_and_probability(net, x, target)
    return Attribution("saliency", target, values, score, probability)


def smoothgrad(
    net: Network,
    x: np.ndarray,
    target: int,
    samples: int = 25,
    noise: float = 0.15,
    seed: int = 0,
) -> Attribution:
    """SmoothGrad (Smilkov, Thorat, Kim, Viégas and Wattenberg 2017, "SmoothGrad: removing
    noise by adding noise"): the saliency map averaged over `samples` copies of x with
    Gaussian noise of standard deviation `noise` x (max(x) - min(x)), the paper's noise
    level (its section 3 finds 10-20% best). The noise comes from `seed`: the same seed
    gives the same map.

    x: (H, W, D). values: (H, W), non-negative.
    """
    check_target(net, target)
    samples = _positive_int("samples", samples)
    if not 0 <= noise <= 1:
        raise AttributionError(f"noise is a share of the input's range, 0 to 1; got {noise}.")
    x = _rows(x, net)
    sigma = noise * float(x.max() - x.min())
    rng = np.random.default_rng(seed)
    noisy = x[None] + (rng.standard_normal((samples, *x.shape)) * sigma).astype(x.dtype)
    _, grads = _gradients(net, noisy, target)
    values = np.abs(grads).max(axis=3).mean(axis=0, dtype=np.float64)
    score, probability = _score_and_probability(net, x, target)
    extras = {"samples": samples, "noise": noise, "sigma": sigma, "seed": seed}
    return Attribution("smoothgrad", target, values, score, probability, extras)


def integrated_gradients(
    net: Network,
    x: np.ndarray,
    target: int,
    steps: int = 32,
    baseline: np.ndarray | None = None,
) -> Attribution:
    """Integrated Gradients (Sundararajan, Taly and Yan 2017, "Axiomatic Attribution for
    Deep Networks"): (x - x0) times the gradient averaged along the straight path from the
    baseline x0 to x, here by the midpoint rule over `steps` points (all in one batch).

    The default baseline is the all-zero preprocessed input: the dataset's mean image.
    Completeness (the paper's axiom) says the attributions add up to score(x) -
    score(x0); extras["delta"] is how far the sum misses it, which shrinks as steps grow.

    x: (H, W, D). values: (H, W), the signed sum over channels.
    """
    check_target(net, target)
    steps = _positive_int("steps", steps)
    x = _rows(x, net)
    x0 = np.zeros_like(x) if baseline is None else _rows(baseline, net)
    alphas = ((np.arange(steps) + 0.5) / steps).astype(x.dtype)
    path = x0[None] + alphas[:, None, None, None] * (x - x0)[None]
    _, grads = _gradients(net, path, target)
    attributions = (x - x0).astype(np.float64) * grads.mean(axis=0, dtype=np.float64)
    score, probability = _score_and_probability(net, x, target)
    baseline_score, _ = _score_and_probability(net, x0, target)
    delta = float(attributions.sum()) - (score - baseline_score)
    extras = {"steps": steps, "baseline_score": baseline_score, "delta": delta}
    return Attribution(
        "integrated-gradients", target, attributions.sum(axis=2), score, probability, extras
    )


def default_gradcam_layer(net: Network) -> int:
    """The last layer before the scores whose volume is still larger than 1x1."""
    for index in range(score_layer(net) - 1, -1, -1):
        layer = net.layers[index]
        h, w, _ = layer.output_shape
        if layer.kind not in NOT_SPATIAL and h * w > 1:
            return index
    raise AttributionError(f"{net.name} has no layer with a spatial volume for Grad-CAM.")


def check_gradcam_layer(net: Network, layer: int) -> int:
    last = score_layer(net)
    if not 0 <= layer < len(net.layers):
        raise AttributionError(
            f"{net.name} has layers 0 to {len(net.layers) - 1}; there is no layer {layer}."
        )
    kind = net.layers[layer].kind
    if kind in NOT_SPATIAL or layer >= last:
        raise AttributionError(
            f"Grad-CAM needs a conv, relu or pool layer before the scores; layer {layer} "
            f"({net.layers[layer].name}) is a {kind} layer."
        )
    return layer


def gradcam(net: Network, x: np.ndarray, target: int, layer: int | None = None) -> Attribution:
    """Grad-CAM (Selvaraju, Cogswell, Das, Vedantam, Parikh and Batra 2017, "Grad-CAM:
    Visual Explanations from Deep Networks via Gradient-based Localization", equations 1
    and 2): with A the layer's volume, alpha_k = the mean over positions of
    d score / d A^k, and the map = ReLU(sum_k alpha_k A^k): only what speaks *for* the
    class.

    layer: an index into net.layers (default: default_gradcam_layer). values: (h, w) at
    the layer's own resolution, non-negative; a viewer upsamples it onto the input.
    """
    check_target(net, target)
    layer = default_gradcam_layer(net) if layer is None else check_gradcam_layer(net, layer)
    x = _rows(x, net)
    activations = forward_to(net.layers[: layer + 1], x[None])
    _, grad = scores_and_gradient(net, activations, target, start=layer + 1)
    volume = activations[0].astype(np.float64)
    alphas = grad[0].astype(np.float64).mean(axis=(0, 1))
    values = np.maximum(volume @ alphas, 0)
    score, probability = _score_and_probability(net, x, target)
    extras = {"layer": layer, "layer_name": net.layers[layer].name, "weights": alphas}
    return Attribution("gradcam", target, values, score, probability, extras)


def patch_positions(size: int, patch: int, stride: int) -> list[int]:
    """Where a patch starts along one side: every stride, plus flush with the far edge, so
    every pixel is covered."""
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return starts


def occlusion(
    net: Network,
    x: np.ndarray,
    target: int,
    patch: int = 8,
    stride: int = 4,
    batch: int = CHUNK,
) -> Attribution:
    """Occlusion (Zeiler and Fergus 2014, "Visualizing and Understanding Convolutional
    Networks", section 4.2): a grey patch (the all-zero preprocessed input, the dataset's
    mean colour) slides over x; each position's value is p(target | x) - p(target |
    occluded x). A pixel's value is the mean over the patches that covered it. The
    occluded copies go through the network `batch` at a time.

    values: (H, W), signed: positive where hiding the pixels lowers the probability.
    """
    check_target(net, target)
    x = _rows(x, net)
    height, width, _ = x.shape
    patch = _positive_int("patch", patch)
    stride = _positive_int("stride", stride)
    batch = _positive_int("batch", batch)
    if patch > min(height, width):
        raise AttributionError(
            f"patch must be at most {min(height, width)} (the input is {height}x{width}); "
            f"got {patch}."
        )
    boxes = [
        (top, left)
        for top in patch_positions(height, patch, stride)
        for left in patch_positions(width, patch, stride)
    ]
    layers = net.layers[: score_layer(net) + 1]
    score, probability = _score_and_probability(net, x, target)
    drops = np.empty(len(boxes))
    for first in range(0, len(boxes), batch):
        chunk = boxes[first : first + batch]
        occluded = np.repeat(x[None], len(chunk), axis=0)
        for row, (top, left) in enumerate(chunk):
            occluded[row, top : top + patch, left : left + patch] = 0
        scores = forward_to(layers, occluded).reshape(len(chunk), -1)
        drops[first : first + len(chunk)] = probability - _probabilities(net, scores)[:, target]
    total = np.zeros((height, width))
    count = np.zeros((height, width))
    for (top, left), drop in zip(boxes, drops, strict=True):
        total[top : top + patch, left : left + patch] += drop
        count[top : top + patch, left : left + patch] += 1
    extras = {"patch": patch, "stride": stride, "positions": len(boxes)}
    return Attribution("occlusion", target, total / count, score, probability, extras)


# Each method's own parameters (besides net, x and target), as a router or a CLI names them.
PARAMETERS: dict[str, tuple[str, ...]] = {
    "saliency": (),
    "smoothgrad": ("samples", "noise", "seed"),
    "integrated-gradients": ("steps",),
    "gradcam": ("layer",),
    "occlusion": ("patch", "stride"),
}
METHODS: dict[str, Callable[..., Attribution]] = {
    "saliency": saliency,
    "smoothgrad": smoothgrad,
    "integrated-gradients": integrated_gradients,
    "gradcam": gradcam,
    "occlusion": occlusion,
}


def explain(net: Network, x: np.ndarray, method: str, target: int, **params: Any) -> Attribution:
    """METHODS[method](net, x, target, **params); AttributionError for an unknown method."""
    try:
        function = METHODS[method]
    except KeyError:
        raise AttributionError(
            f"There is no attribution method {method!r}; the methods are {', '.join(METHODS)}."
        ) from None
    return function(net, x, target, **params)
