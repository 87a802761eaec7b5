"""An attribution map drawn over the input it explains, as PNG.

    png = heatmap.overlay_png(pixels, values, alpha=0.6, upscale=8)

The map is stretched to the picture with bilinear interpolation (a Grad-CAM map is a few
cells; the input's pixels stay crisp squares), coloured with the colormaps of app/render.py
(viridis for maps that cannot be negative, coolwarm with zero at its light centre for
signed ones) and laid over the input with an opacity that grows with the value's
magnitude: where the map is near zero the picture shows through, so the eye goes to the
pixels that mattered.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from app import render

DEFAULT_ALPHA = 0.7
DEFAULT_SIDE = 256
PERCENTILE = 99


def colormap_for(values: np.ndarray) -> str:
    return render.default_colormap(values)


def value_range(values: np.ndarray) -> tuple[float, float]:
    """(lo, hi) the colours span: 0..limit for a non-negative map, -limit..limit for a
    signed one (equal colours, equal magnitudes on both sides). The limit is the 99th
    percentile of |values|, not the maximum: gradient maps have a few spikes that would
    otherwise leave every other pixel faint; the spikes take the end colour."""
    if not values.size:
        return 0.0, 0.0
    magnitude = np.abs(values)
    limit = float(np.quantile(magnitude, PERCENTILE / 100)) or float(magnitude.max())
    return (-limit, limit) if float(values.min()) < 0 else (0.0, limit)


def stretch(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h, w) -> (height, width) float32 by bilinear interpolation (identity if equal)."""
    values = np.asarray(values, np.float32)
    if values.shape == (height, width):
        return values
    image = Image.fromarray(values, "F").resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(image, np.float32)


def overlay(
    pixels: np.ndarray, values: np.ndarray, alpha: float = DEFAULT_ALPHA, upscale: int = 1
) -> np.ndarray:
    """uint8 (H, W, 1 or 3) input and an (h, w) map -> uint8 (H * upscale, W * upscale, 3)."""
    height, width, depth = pixels.shape
    picture = pixels.repeat(3, axis=2) if depth == 1 else pixels
    picture = picture.repeat(upscale, axis=0).repeat(upscale, axis=1).astype(np.float32)
    side_h, side_w = height * upscale, width * upscale
    stretched = stretch(values, side_h, side_w)
    lo, hi = value_range(np.asarray(values))
    name = "coolwarm" if lo < 0 else "viridis"
    colours = render.COLORMAPS[name][render.to_indices(stretched, name, lo, hi)]
    limit = max(abs(lo), abs(hi)) or 1.0
    weight = (alpha * np.clip(np.abs(stretched) / limit, 0, 1))[:, :, None]
    mixed = picture * (1 - weight) + colours.astype(np.float32) * weight
    return np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def overlay_png(
    pixels: np.ndarray,
    values: np.ndarray,
    alpha: float = DEFAULT_ALPHA,
    upscale: int | None = None,
) -> bytes:
    """overlay() as PNG; without upscale, the longer side is about DEFAULT_SIDE pixels.
    Raises render.RenderError when the picture would be too large."""
    height, width, _ = pixels.shape
    factor = render._check_upscale(upscale, height, width, default_side=DEFAULT_SIDE)
    render._check_size(height * factor, width * factor)
    return render.encode_png(overlay(pixels, values, alpha, factor))
