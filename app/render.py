"""Volumes and weights to PNG: colormaps as lookup tables, one slice or a labelled mosaic.

    png = render.volume_png(volume)                   # all depth slices, labelled
    png = render.volume_png(volume, slice_index=3)    # one slice

Slices are upscaled by repeating pixels (no smoothing), so every neuron stays a crisp square.
"""

from __future__ import annotations

import io
import math
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Colormap = Literal["gray", "viridis", "coolwarm"]
Scale = Literal["layer", "slice"]

MAX_UPSCALE = 16
MAX_SIDE = 4096
BACKGROUND = (24, 24, 24)
LABEL_COLOUR = (200, 200, 200)
LABEL_HEIGHT = 12
GAP = 2


class RenderError(ValueError):
    """A rendering request that cannot be met (too large); the message says why."""


def _lut_from_stops(hex_stops: str) -> np.ndarray:
    """(256, 3) uint8 from RGB stops sampled at 0, 8, ..., 248 and 255 (33 stops)."""
    stops = np.array(
        [[int(hex_stops[i + j : i + j + 2], 16) for j in (0, 2, 4)] for i in range(0, 198, 6)],
        np.float64,
    )
    positions = [*range(0, 256, 8), 255]
    table = [np.interp(np.arange(256), positions, stops[:, c]) for c in range(3)]
    return np.round(np.stack(table, axis=1)).astype(np.uint8)


# Sampled from matplotlib's tables (the page's static/js/colormaps.js holds all 256 entries).
COLORMAPS: dict[str, np.ndarray] = {
    "gray": np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1),
    "viridis": _lut_from_stops(
        "440154470d6048186a482374472d7b4537814240863e49893b528b375b8d33638d2f6b8e2c728e297a8e"
        "26828e23898e21918c1f988b1fa08822a78528ae8032b67a3fbc734ec36b5ec96270cf5784d44b98d83e"
        "addc30c2df23d8e219ece51bfde725"
    ),
    "coolwarm": _lut_from_stops(
        "3b4cc0445acc4e68d85875e16282ea6c8ff1779af782a6fb8db0fe98b9ffa3c2feaec9fcb9d0f9c3d5f4"
        "ccd9edd5dbe5dddcdce5d8d1ecd3c5f1ccb8f5c4acf7ba9ff7b093f6a586f4987af08b6eeb7d62e46e56"
        "dd5f4bd44e41ca3b37be242eb40426"
    ),
}
DIVERGING = frozenset({"coolwarm"})


def default_colormap(values: np.ndarray) -> Colormap:
    """Diverging (zero at the light centre) for signed values, viridis otherwise."""
    return "coolwarm" if values.size and float(values.min()) < 0 else "viridis"


def to_indices(values: np.ndarray, colormap: str, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Values -> uint8 LUT indices. lo and hi broadcast against values (per layer or slice).

    A diverging map puts 0 at the centre and +-max(|lo|, |hi|) at the ends; the others map
    lo..hi to 0..255. A constant range maps to the centre (diverging) or to 0.
    """
    values = values.astype(np.float32, copy=False)
    lo, hi = np.asarray(lo, np.float32), np.asarray(hi, np.float32)
    if colormap in DIVERGING:
        limit = np.maximum(np.abs(lo), np.abs(hi))
        safe = np.where(limit > 0, limit, 1)
        scaled = (values / safe + 1) * 127.5
    else:
        span = hi - lo
        safe = np.where(span > 0, span, 1)
        scaled = (values - lo) / safe * 255
    return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)


def _ranges(volume: np.ndarray, scale: Scale) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) for an (H, W, D) volume, broadcastable against it."""
    if scale == "slice":
        return volume.min(axis=(0, 1)), volume.max(axis=(0, 1))
    return volume.min(), volume.max()


def _upscaled(pixels: np.ndarray, factor: int) -> np.ndarray:
    return pixels.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else pixels


def _check_upscale(upscale: int | None, height: int, width: int, default_side: int) -> int:
    """The explicit upscale, bounded; or one that makes the longer side about default_side."""
    if upscale is None:
        return max(1, min(MAX_UPSCALE, default_side // max(height, width, 1)))
    if not 1 <= upscale <= MAX_UPSCALE:
        raise RenderError(f"upscale must be between 1 and {MAX_UPSCALE}, got {upscale}.")
    return upscale


def _check_size(height: int, width: int) -> None:
    if max(height, width) > MAX_SIDE:
        raise RenderError(
            f"The picture would be {width}x{height} pixels; the limit is {MAX_SIDE} per side. "
            "Ask for a smaller upscale."
        )


def encode_png(pixels: np.ndarray) -> bytes:
    """uint8 (H, W) or (H, W, 3) -> PNG bytes (fast compression: these are small)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, "PNG", compress_level=3)
    return buffer.getvalue()


def volume_png(
    volume: np.ndarray,
    *,
    slice_index: int | None = None,
    colormap: Colormap | None = None,
    scale: Scale = "layer",
    upscale: int | None = None,
) -> bytes:
    """An (H, W, D) volume as PNG: one depth slice, or all of them as a labelled mosaic."""
    colormap = colormap or default_colormap(volume)
    lo, hi = _ranges(volume, scale)
    height, width, depth = volume.shape
    if slice_index is not None:
        if not 0 <= slice_index < depth:
            raise IndexError(f"slice {slice_index} is outside 0..{depth - 1}")
        factor = _check_upscale(upscale, height, width, default_side=256)
        _check_size(height * factor, width * factor)
        if scale == "slice":
            lo, hi = lo[slice_index], hi[slice_index]
        indices = to_indices(volume[:, :, slice_index], colormap, lo, hi)
        return encode_png(COLORMAPS[colormap][_upscaled(indices, factor)])
    factor = _check_upscale(upscale, height, width, default_side=64)
    indices = to_indices(volume, colormap, lo, hi).transpose(2, 0, 1)
    tiles = COLORMAPS[colormap][indices]  # (D, H, W, 3)
    return encode_png(mosaic(tiles, factor, labels=[str(d) for d in range(depth)]))


def mosaic(tiles: np.ndarray, factor: int, labels: list[str] | None = None) -> np.ndarray:
    """(N, H, W, 3) uint8 tiles -> one (rows, cols) grid picture, each tile upscaled by
    factor and, with labels, captioned above."""
    count, height, width, _ = tiles.shape
    font = ImageFont.load_default() if labels else None
    label_width = max((int(font.getlength(text)) for text in labels), default=0) if font else 0
    cell_h = height * factor + (LABEL_HEIGHT if labels else 0) + GAP
    cell_w = max(width * factor, label_width) + GAP
    cols = math.ceil(math.sqrt(count * cell_h / cell_w))
    cols = max(1, min(count, cols))
    rows = math.ceil(count / cols)
    _check_size(rows * cell_h + GAP, cols * cell_w + GAP)
    canvas = np.empty((rows * cell_h + GAP, cols * cell_w + GAP, 3), np.uint8)
    canvas[:] = BACKGROUND
    label_h = LABEL_HEIGHT if labels else 0
    for i in range(count):
        top = GAP + (i // cols) * cell_h + label_h
        left = GAP + (i % cols) * cell_w
        canvas[top : top + height * factor, left : left + width * factor] = _upscaled(
            tiles[i], factor
        )
    if not labels:
        return canvas
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    for i, text in enumerate(labels):
        draw.text(
            (GAP + (i % cols) * cell_w, GAP + (i // cols) * cell_h - 1),
            text,
            fill=LABEL_COLOUR,
            font=font,
        )
    return np.asarray(image)


def pixels_png(pixels: np.ndarray, upscale: int | None = None) -> bytes:
    """uint8 (H, W, 1 or 3) input pixels as PNG, upscaled."""
    height, width, depth = pixels.shape
    factor = _check_upscale(upscale, height, width, default_side=256)
    _check_size(height * factor, width * factor)
    image = pixels[:, :, 0] if depth == 1 else pixels
    return encode_png(_upscaled(image, factor))


def weights_png(weight: np.ndarray, upscale: int | None = None) -> bytes:
    """Filters as PNG. weight is (F, C, KH, KW): a conv layer's weight, or an fc layer's
    reshaped to (out, D, H, W) of its input volume.

    With C = 3 each filter is one colour tile (what the first layer of a photo model looks
    for); otherwise one row per filter, one coolwarm tile per input depth slice.
    """
    filters, channels, kh, kw = weight.shape
    limit = float(np.abs(weight).max()) or 1.0
    if channels == 3:
        colour = np.clip((weight / limit + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8)
        tiles = colour.transpose(0, 2, 3, 1)  # (F, KH, KW, 3)
        factor = _check_upscale(upscale, kh, kw, default_side=48)
        return encode_png(mosaic(tiles, factor, labels=[str(f) for f in range(filters)]))
    indices = to_indices(weight, "coolwarm", -limit, limit)
    tiles = COLORMAPS["coolwarm"][indices]  # (F, C, KH, KW, 3)
    if upscale is None:
        # At most about 1024 pixels along the longer side of the grid.
        upscale = (1024 // max(filters, channels) - 1) // max(kh, kw)
        upscale = max(1, min(MAX_UPSCALE, upscale))
    factor = _check_upscale(upscale, kh, kw, default_side=0)
    return encode_png(_grid(tiles, factor))


def _grid(tiles: np.ndarray, factor: int) -> np.ndarray:
    """(rows, cols, H, W, 3) tiles -> a grid picture with 1-pixel gaps."""
    rows, cols, height, width, _ = tiles.shape
    cell_h, cell_w = height * factor + 1, width * factor + 1
    _check_size(rows * cell_h + 1, cols * cell_w + 1)
    cells = np.empty((rows, cols, cell_h, cell_w, 3), np.uint8)
    cells[:] = BACKGROUND
    cells[:, :, 1:, 1:] = tiles.repeat(factor, axis=2).repeat(factor, axis=3)
    canvas = np.empty((rows * cell_h + 1, cols * cell_w + 1, 3), np.uint8)
    canvas[:] = BACKGROUND
    canvas[:-1, :-1] = cells.transpose(0, 2, 1, 3, 4).reshape(rows * cell_h, cols * cell_w, 3)
    return canvas
