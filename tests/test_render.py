"""Volumes and weights to PNG: colormaps, one slice, the labelled mosaic, the bounds."""

import io

import numpy as np
import pytest
from PIL import Image

from app import render


def decode(png: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return np.asarray(image)


def test_colormaps_are_256_rgb_entries_with_matplotlib_ends() -> None:
    for lut in render.COLORMAPS.values():
        assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert render.COLORMAPS["viridis"][0].tolist() == [0x44, 0x01, 0x54]
    assert render.COLORMAPS["viridis"][255].tolist() == [0xFD, 0xE7, 0x25]
    assert render.COLORMAPS["coolwarm"][0].tolist() == [0x3B, 0x4C, 0xC0]
    assert render.COLORMAPS["coolwarm"][255].tolist() == [0xB4, 0x04, 0x26]
    assert render.COLORMAPS["gray"][77].tolist() == [77, 77, 77]


def test_default_colormap_is_diverging_only_for_signed_values() -> None:
    assert render.default_colormap(np.array([0.0, 2.0])) == "viridis"
    assert render.default_colormap(np.array([-0.1, 2.0])) == "coolwarm"


def test_diverging_puts_zero_in_the_middle_and_is_symmetric() -> None:
    values = np.array([-2.0, 0.0, 1.0, 2.0])
    indices = render.to_indices(values, "coolwarm", values.min(), values.max())
    assert indices.tolist() == [0, 128, 191, 255]


def test_sequential_maps_min_to_0_and_max_to_255() -> None:
    values = np.array([1.0, 2.0, 3.0])
    assert render.to_indices(values, "viridis", 1.0, 3.0).tolist() == [0, 128, 255]


def test_constant_volume_does_not_divide_by_zero() -> None:
    volume = np.zeros((4, 4, 2), np.float32)
    assert decode(render.volume_png(volume, slice_index=0, upscale=1)).shape == (4, 4, 3)
    assert decode(render.volume_png(volume, colormap="coolwarm", upscale=1)).ndim == 3


def test_one_slice_is_exact_and_upscaled_by_repeating_pixels() -> None:
    volume = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    pixels = decode(
        render.volume_png(volume, slice_index=1, colormap="gray", scale="slice", upscale=2)
    )
    assert pixels.shape == (4, 6, 3)
    one = volume[:, :, 1]
    expected = render.to_indices(one, "gray", one.min(), one.max())
    assert (pixels[::2, ::2, 0] == expected).all()
    assert (pixels[1::2, 1::2] == pixels[::2, ::2]).all()


def test_layer_scale_shares_one_range_across_slices() -> None:
    volume = np.stack([np.full((2, 2), 1.0), np.full((2, 2), 3.0)], axis=-1)
    layer = decode(render.volume_png(volume, slice_index=0, colormap="gray", upscale=1))
    per_slice = decode(
        render.volume_png(volume, slice_index=0, colormap="gray", scale="slice", upscale=1)
    )
    assert layer[0, 0, 0] == 0  # 1.0 is the layer's minimum
    assert per_slice[0, 0, 0] == 0  # a constant slice maps to 0


def test_mosaic_holds_every_slice_with_a_label() -> None:
    volume = np.random.default_rng(0).random((8, 8, 10)).astype(np.float32)
    pixels = decode(render.volume_png(volume, upscale=2))
    tile = render.COLORMAPS["viridis"]
    # Count the tiles: 16x16 blocks of colormap colours, laid out on a grid.
    height, width, _ = pixels.shape
    assert height < 4096 and width < 4096
    cols = (width - render.GAP) // (16 + render.GAP)
    rows = (height - render.GAP) // (16 + render.LABEL_HEIGHT + render.GAP)
    assert cols * rows >= 10 > (cols - 1) * rows
    # The first tile sits under its label strip, which has light text pixels.
    top, left = render.GAP + render.LABEL_HEIGHT, render.GAP
    first = pixels[top : top + 16, left : left + 16]
    assert {tuple(c) for c in first.reshape(-1, 3)} <= {tuple(c) for c in tile}
    strip = pixels[render.GAP : top, left : left + 16]
    assert strip.max() > 120


def test_default_upscale_makes_tiny_slices_visible() -> None:
    pixels = decode(render.volume_png(np.ones((1, 1, 10), np.float32)))
    assert pixels.shape[0] >= 3 * 16


@pytest.mark.parametrize("upscale", [0, 17])
def test_upscale_is_bounded(upscale: int) -> None:
    with pytest.raises(render.RenderError):
        render.volume_png(np.ones((4, 4, 1), np.float32), slice_index=0, upscale=upscale)


def test_output_size_is_bounded() -> None:
    with pytest.raises(render.RenderError, match="4096"):
        render.volume_png(np.ones((300, 300, 1), np.float32), slice_index=0, upscale=16)
    with pytest.raises(render.RenderError, match="4096"):
        render.volume_png(np.ones((32, 32, 512), np.float32), upscale=16)


def test_slice_out_of_range() -> None:
    with pytest.raises(IndexError):
        render.volume_png(np.ones((2, 2, 3), np.float32), slice_index=3)


def test_input_pixels_png_round_trips() -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert (decode(render.pixels_png(pixels, upscale=1)) == pixels).all()
    gray = pixels[:, :, :1]
    assert (decode(render.pixels_png(gray, upscale=3))[::3, ::3] == gray[:, :, 0]).all()


def test_rgb_filters_are_colour_tiles() -> None:
    weight = np.zeros((4, 3, 3, 3), np.float32)
    weight[0, 0] = 1.0  # filter 0 looks for red
    pixels = decode(render.weights_png(weight, upscale=1))
    red = np.all(pixels == [255, 128, 128], axis=-1)
    assert red.sum() == 9  # filter 0's 3x3 tile


def test_other_filters_are_a_grid_of_filters_by_input_slices() -> None:
    weight = np.random.default_rng(2).normal(size=(5, 7, 3, 3)).astype(np.float32)
    pixels = decode(render.weights_png(weight, upscale=2))
    assert pixels.shape == (5 * 7 + 1, 7 * 7 + 1, 3)
