"""The one inference path: preprocessed pixels through a network, one layer at a time, each
volume with its statistics; then the class probabilities and the top classes.

    for layer, volume, stats in inference.layers(net, pixels):
        ...                                  # as soon as each layer is computed
    probabilities, top = inference.scores(net, last_volume)

The forward route streams what this yields and `convscope forward` writes it to files; both
fill one RunRecord (app/record.py) from it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from app.record import RunLayer, RunRecord, TopClass
from model import Network
from model.layers import Conv, Layer, MaxPool, ReLU

TOP_CLASSES = 5


def stats(volume: np.ndarray) -> dict[str, float]:
    """min, max, mean, std and the fraction of exact zeros of a volume."""
    flat = volume.reshape(-1)
    mean = float(np.add.reduce(flat, dtype=np.float64)) / flat.size
    centred = flat - np.float32(mean)
    return {
        "min": float(flat.min()),
        "max": float(flat.max()),
        "mean": mean,
        "std": float(np.sqrt(np.dot(centred, centred) / flat.size)),
        # == 0 counts -0.0 too, and is four times faster than count_nonzero on floats.
        "zeros": np.count_nonzero(flat == 0) / flat.size,
    }


def layers(
    net: Network, pixels: np.ndarray
) -> Iterator[tuple[Layer, np.ndarray, dict[str, float]]]:
    """Yield (layer, volume (H, W, D), stats) for uint8 pixels (H, W, D), layer by layer.

    FloatingPointError if a layer produces NaN or infinity (its numbers are not JSON)."""
    for layer, batch in net.forward_iter(net.preprocess(pixels[None])):
        volume = batch[0]
        yield layer, volume, checked_stats(layer, volume)


def checked_stats(layer: Layer, volume: np.ndarray) -> dict[str, float]:
    """The volume's stats; FloatingPointError if it holds NaN or infinity."""
    numbers = stats(volume)
    # min and max are NaN if any number is, and infinite if any is: no pass of its own.
    if not (math.isfinite(numbers["min"]) and math.isfinite(numbers["max"])):
        raise FloatingPointError(f"layer {layer.name} produced NaN or infinity")
    return numbers


# Layers whose batched forward gives each image the very bits it gets alone: a conv
# multiplies each image's im2col rows by a product of their own (Conv.forward), ReLU and
# max pool are per number. A fully connected layer is not (one image's product is BLAS's
# gemv, a batch's gemm, which sum in another order), nor are imported layers unchecked.
BATCH_EXACT = (Conv, ReLU, MaxPool)


def forward_batch(net: Network, pixels: np.ndarray) -> Iterator[tuple[Layer, np.ndarray]]:
    """Yield (layer, volumes (N, H, W, D)) for uint8 pixels (N, H, W, D): each image's
    volumes exactly those `layers` gives it alone (the same bits), computed for the whole
    batch where that holds (BATCH_EXACT) and image by image where it does not."""
    if len(pixels) == 1:
        yield from net.forward_iter(net.preprocess(pixels))
        return
    x = net.check_input(net.preprocess(pixels))
    for layer in net.layers:
        if isinstance(layer, BATCH_EXACT):
            x = layer.forward(x)
        else:
            x = np.concatenate([layer.forward(x[i : i + 1]) for i in range(len(x))])
        yield layer, x


def top(probabilities: np.ndarray, classes: list[str], k: int = TOP_CLASSES) -> list[TopClass]:
    """The k most probable classes, most probable first (ties: the lower index first)."""
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [
        TopClass(
            index=int(i),
            class_=classes[i] if i < len(classes) else str(i),
            probability=float(probabilities[i]),
        )
        for i in order
    ]


def scores(net: Network, last: np.ndarray) -> tuple[np.ndarray, list[TopClass]]:
    """The class probabilities (float64) from the last layer's volume, and the top classes."""
    probabilities = net.probabilities(last)
    return probabilities, top(probabilities, net.classes)


def add_layer(record: RunRecord, layer: Layer, volume: np.ndarray, numbers: dict) -> None:
    """Note one computed layer in the run's record. Validated: pydantic's validation runs
    in compiled code, less than half the CPU of model_construct's Python (6 against 15 us)."""
    record.layers.append(
        RunLayer(
            index=len(record.layers),
            name=layer.name,
            kind=layer.kind,
            shape=list(volume.shape),
            stats=numbers,  # validated into Stats
        )
    )


def add_scores(record: RunRecord, probabilities: np.ndarray, best: list[TopClass]) -> None:
    record.probabilities = [float(p) for p in probabilities]
    record.top = best
