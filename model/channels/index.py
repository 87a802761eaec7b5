"""The dataset positions that excite each channel most (Zeiler and Fergus 2014; the Deep
Visualization Toolbox shows the top 9 per unit).

For every channel of every conv, relu and pool layer, `TopK` keeps the k positions
(image, row, col) with the largest activation over a whole split, streamed batch by batch.
Order is total: a larger value first and, of equal values, the position met first in
(image, row, col) order, so which positions win does not depend on the batch size (a dead
ReLU channel, all zeros, keeps its first k positions). The values themselves can differ in
the last bit between batch sizes, as BLAS sums in another order.

`receptive_patch` crops the input pixels a neuron sees. Where its receptive field runs past
the image's edge, the network convolves zero-padding of the normalised input, which is the
dataset's mean colour in pixels: the crop is padded with that colour, so the patch is
exactly what the neuron sees.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from model.layers import ReceptiveField
from model.network import Network

INDEXED_KINDS = ("conv", "relu", "pool")


class TopK:
    """The k largest values per channel of a stream of (N, H, W, D) volumes."""

    def __init__(self, depth: int, k: int):
        self.k = k
        self.values = np.zeros((depth, 0), np.float32)
        self.positions = np.zeros((depth, 0), np.int64)  # image * H * W + row * W + col

    def add(self, volume: np.ndarray, first_image: int) -> None:
        n, h, w, d = volume.shape
        flat = volume.reshape(-1, d)
        offset = first_image * h * w
        if self.values.shape[1] < self.k:
            self._add_rows(flat, np.arange(d), offset)
            return
        # Once k are kept, only values above a channel's k-th can enter: an equal one comes
        # later in (image, row, col) order, so it loses the tie. Most batches bring few.
        found, channels = np.nonzero(flat > self.values[:, -1])
        if len(channels) == 0:
            return
        counts = np.bincount(channels, minlength=d)
        crowded = counts > 4 * self.k
        if crowded.any():
            self._add_rows(flat, np.flatnonzero(crowded), offset)
            keep = ~crowded[channels]
            found, channels, counts = found[keep], channels[keep], counts * ~crowded
        if len(channels) == 0:
            return
        order = np.argsort(channels, kind="stable")  # by channel, positions still in order
        found, channels = found[order], channels[order]
        slots = np.arange(len(channels)) - (np.cumsum(counts) - counts)[channels]
        values = np.full((d, counts.max()), -np.inf, np.float32)
        positions = np.full((d, counts.max()), np.iinfo(np.int64).max, np.int64)
        values[channels, slots] = flat[found, channels]
        positions[channels, slots] = found + offset
        self._merge(values, positions)

    def _add_rows(self, flat: np.ndarray, rows: np.ndarray, offset: int) -> None:
        """Merge the batch's own top k of channels `rows` (all of a channel's values)."""
        values = np.ascontiguousarray(flat[:, rows].T)
        local = _batch_top(values, self.k)
        width = local.shape[1]
        all_values = np.full((len(self.values), width), -np.inf, np.float32)
        all_positions = np.full((len(self.values), width), np.iinfo(np.int64).max, np.int64)
        all_values[rows] = np.take_along_axis(values, local, axis=1)
        all_positions[rows] = local + offset
        self._merge(all_values, all_positions)

    def _merge(self, values: np.ndarray, positions: np.ndarray) -> None:
        values = np.concatenate([self.values, values], axis=1)
        positions = np.concatenate([self.positions, positions], axis=1)
        order = np.lexsort((positions, -values), axis=1)[:, : self.k]
        values = np.take_along_axis(values, order, axis=1)
        positions = np.take_along_axis(positions, order, axis=1)
        # Padding (-inf) never stays: there are always enough real values for k, or the
        # layer has fewer than k positions so far, and then it is cut off here.
        real = np.isfinite(values).all(axis=0)
        self.values, self.positions = values[:, real], positions[:, real]


def _batch_top(values: np.ndarray, k: int) -> np.ndarray:
    """Per row of (D, M) values, the column indices of its k largest, ties to the smaller
    index; (D, min(k, M)), in no particular order."""
    depth, m = values.shape
    if m <= k:
        return np.broadcast_to(np.arange(m), (depth, m)).copy()
    threshold = np.partition(values, m - k, axis=1)[:, m - k : m - k + 1]
    chosen = values >= threshold
    counts = chosen.sum(axis=1)
    out = np.empty((depth, k), np.int64)
    exact = counts == k
    if exact.all():
        return np.nonzero(chosen)[1].reshape(depth, k)
    if exact.any():
        out[exact] = np.nonzero(chosen[exact])[1].reshape(-1, k)
    for row in np.flatnonzero(~exact):  # ties at the k-th value: the first ones win
        above = np.flatnonzero(values[row] > threshold[row])
        equal = np.flatnonzero(values[row] == threshold[row])[: k - len(above)]
        out[row] = np.concatenate([above, equal])
    return out


def receptive_patch(
    image: np.ndarray, rf: ReceptiveField, row: int, col: int, pad_value: np.ndarray
) -> np.ndarray:
    """The rf.size x rf.size pixels neuron (row, col) sees in image (H, W, C) uint8, with
    pad_value (C,) where the field runs past the image."""
    h, w, c = image.shape
    half = (rf.size - 1) / 2
    top = math.ceil(rf.start + row * rf.jump - half)
    left = math.ceil(rf.start + col * rf.jump - half)
    patch = np.empty((rf.size, rf.size, c), image.dtype)
    patch[...] = pad_value
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + rf.size, h), min(left + rf.size, w)
    if y0 < y1 and x0 < x1:
        patch[y0 - top : y1 - top, x0 - left : x1 - left] = image[y0:y1, x0:x1]
    return patch


def pad_pixel(net: Network) -> np.ndarray:
    """The pixel whose normalised value is zero: the network's own padding, as a colour."""
    mean = np.asarray(net.normalization["mean"], np.float64)
    return np.clip(np.round(mean), 0, 255).astype(np.uint8)


@dataclass
class LayerTop:
    """One layer's top positions: values (D, k) float32 and (image, row, col) each (D, k);
    patches (D, k, S, S, C) uint8. A channel of a layer with fewer than k positions has
    fewer columns (never the case for a real dataset)."""

    index: int
    name: str
    kind: str
    field: ReceptiveField
    values: np.ndarray
    images: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    patches: np.ndarray = field(repr=False)


@dataclass
class ChannelIndex:
    """The top-k of every indexed layer of one network over one dataset split."""

    k: int
    count: int
    pad_value: np.ndarray
    layers: list[LayerTop]


def build_index(
    net: Network,
    images: np.ndarray,
    k: int = 9,
    batch_size: int = 50,
    progress: Callable[[int], None] | None = None,
) -> ChannelIndex:
    """Push images (N, H, W, C) uint8 through net in batches and keep, for every channel of
    every conv, relu and pool layer, its k largest activations and their input patches.
    progress(n) is called with the number of images done after each batch."""
    indexed = [i for i, layer in enumerate(net.layers) if layer.kind in INDEXED_KINDS]
    last = max(indexed) if indexed else -1
    tops = {i: TopK(net.layers[i].output_shape[2], k) for i in indexed}
    for start in range(0, len(images), batch_size):
        batch = net.preprocess(images[start : start + batch_size])
        for i, layer in enumerate(net.layers[: last + 1]):
            batch = layer.forward(batch)
            if i in tops:
                tops[i].add(batch, start)
        if progress:
            progress(min(start + batch_size, len(images)))
    pad = pad_pixel(net)
    layers = []
    for i in indexed:
        h, w, _ = net.layers[i].output_shape
        positions = tops[i].positions
        image_ids, rest = np.divmod(positions, h * w)
        rows, cols = np.divmod(rest, w)
        rf = net.receptive_field(i)
        patches = np.stack(
            [
                np.stack(
                    [
                        receptive_patch(images[n], rf, r, c, pad)
                        for n, r, c in zip(image_ids[d], rows[d], cols[d], strict=True)
                    ]
                )
                for d in range(len(positions))
            ]
        )
        layer = net.layers[i]
        layers.append(
            LayerTop(i, layer.name, layer.kind, rf, tops[i].values, image_ids, rows, cols, patches)
        )
    return ChannelIndex(k, len(images), pad, layers)
