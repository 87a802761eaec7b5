"""Uploads to input pixels: formats, orientation, modes, crop and resize, MNIST look."""

import io

import numpy as np
import pytest
from PIL import Image, ImageFilter

from app import imaging
from app.imaging import ImageError
from tests.images import digit, encode, jpeg, photo, png, png_with_size

MAX_PIXELS = 40_000_000
CIFAR = (32, 32, 3)
MNIST = (28, 28, 1)


def prepare(data: bytes, shape=CIFAR, digits: bool = False) -> np.ndarray:
    return imaging.prepare(data, shape, digits=digits, max_pixels=MAX_PIXELS)


def solid(colour, size=(40, 30), mode="RGB") -> Image.Image:
    return Image.new(mode, size, colour)


@pytest.mark.parametrize(
    ("fmt", "options"),
    [("JPEG", {"quality": 95}), ("PNG", {}), ("GIF", {}), ("WEBP", {"lossless": True}),
     ("BMP", {}), ("TIFF", {})],
)  # fmt: skip
def test_every_format_decodes_to_the_same_picture(fmt: str, options: dict) -> None:
    pixels = prepare(encode(solid((200, 40, 30)), fmt, **options))
    assert pixels.shape == CIFAR and pixels.dtype == np.uint8
    # GIF quantises to a palette and JPEG is lossy: close, not exact.
    assert np.abs(pixels.astype(int) - [200, 40, 30]).max() <= 6


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "TIFF"])
def test_first_frame_or_page_is_used(fmt: str) -> None:
    frames = [solid((250, 0, 0)), solid((0, 0, 250)), solid((0, 250, 0))]
    options = {"lossless": True} if fmt == "WEBP" else {}
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], **options)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    pixels = prepare(data)
    assert pixels[..., 0].min() > 200 and pixels[..., 2].max() < 40


def test_exif_orientation_is_honoured() -> None:
    # Stored sideways: a wide picture, red on the left, that the camera says to turn 90 deg.
    image = Image.new("RGB", (64, 32), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 32, 32))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    upright = imaging.decode(jpeg(image, exif=exif.tobytes()), MAX_PIXELS)
    assert upright.size == (32, 64)
    top, bottom = np.asarray(upright)[4, 16], np.asarray(upright)[60, 16]
    assert top[0] > 200 and bottom[2] > 200  # red is now on top


@pytest.mark.parametrize(
    ("mode", "colour"),
    [("RGBA", (255, 0, 0, 0)), ("LA", (0, 0))],
)
def test_transparency_is_composited_over_white(mode: str, colour) -> None:
    image = Image.new(mode, (20, 20), colour)
    pixels = prepare(png(image))
    assert pixels.min() == 255


def test_half_transparent_black_becomes_grey() -> None:
    pixels = prepare(png(Image.new("RGBA", (20, 20), (0, 0, 0, 128))))
    assert np.all(np.abs(pixels.astype(int) - 127) <= 2)


def test_palette_transparency_is_composited() -> None:
    image = Image.new("P", (20, 20), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pixels = prepare(encode(image, "PNG", transparency=1))
    assert pixels.min() == 255


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (Image.new("CMYK", (20, 20), (0, 255, 255, 0)), (255, 0, 0)),
        (Image.new("1", (20, 20), 1), (255, 255, 255)),
        (Image.new("L", (20, 20), 100), (100, 100, 100)),
        (Image.new("P", (20, 20), 0).convert("P"), (0, 0, 0)),
    ],
)
def test_other_modes_convert(image: Image.Image, expected) -> None:
    fmt = "JPEG" if image.mode == "CMYK" else "PNG"
    pixels = prepare(encode(image, fmt, **({"quality": 100} if fmt == "JPEG" else {})))
    assert np.abs(pixels.astype(int) - expected).max() <= 3


def test_sixteen_bit_grayscale_keeps_its_range() -> None:
    values = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    data = png(Image.fromarray(values))
    image = imaging.decode(data, MAX_PIXELS)
    assert image.mode == "L"
    pixels = np.asarray(image)
    assert pixels.min() <= 1 and pixels.max() >= 254


def test_float_images_in_zero_to_one_are_stretched() -> None:
    image = imaging.flatten(Image.fromarray(np.full((4, 4), 0.5, np.float32), "F"))
    assert np.asarray(image).tolist() == [[128] * 4] * 4


def test_centre_crop_keeps_the_middle() -> None:
    wide = Image.new("RGB", (96, 32), (255, 0, 0))
    wide.paste((0, 255, 0), (32, 0, 64, 32))  # the middle third is green
    pixels = prepare(png(wide))
    assert pixels[..., 1].min() > 240 and pixels[..., 0].max() < 15


def test_resize_is_antialiased() -> None:
    # A one-pixel checkerboard: without antialiasing it would alias to black or white.
    board = (np.indices((256, 256)).sum(axis=0) % 2 * 255).astype(np.uint8)
    pixels = prepare(png(Image.fromarray(board).convert("RGB")))
    assert np.abs(pixels.astype(int) - 127).max() <= 12


def test_grayscale_model_gets_one_channel() -> None:
    pixels = imaging.photo_input(photo(), (16, 16, 1))
    assert pixels.shape == (16, 16, 1)


# --- MNIST look ------------------------------------------------------------------------


def ink_box(pixels: np.ndarray) -> tuple[int, int]:
    rows, cols = np.nonzero(pixels[:, :, 0])
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


def centre_of_mass(pixels: np.ndarray) -> tuple[float, float]:
    weights = pixels[:, :, 0].astype(float)
    rows, cols = np.indices(weights.shape)
    return (rows * weights).sum() / weights.sum(), (cols * weights).sum() / weights.sum()


@pytest.mark.parametrize("offset", [(0, 0), (-40, 30)])
def test_dark_digit_on_paper_becomes_light_on_dark_centred_in_20x20(offset) -> None:
    pixels = prepare(jpeg(digit(offset=offset).convert("RGB")), MNIST, digits=True)
    assert pixels.shape == MNIST
    assert pixels[0].max() == 0 and pixels[:, 0].max() == 0  # dark background
    assert pixels.max() == 255  # light ink
    height, width = ink_box(pixels)
    assert max(height, width) in (19, 20, 21) and min(height, width) >= 8
    row, col = centre_of_mass(pixels)
    assert abs(row - 13.5) <= 1 and abs(col - 13.5) <= 1


def test_light_digit_on_dark_is_not_inverted() -> None:
    light = prepare(png(digit(ink=255, paper=0)), MNIST, digits=True)
    dark = prepare(png(digit(ink=0, paper=255)), MNIST, digits=True)
    assert np.abs(light.astype(int) - dark.astype(int)).max() <= 2


def test_an_mnist_sized_digit_keeps_its_shape() -> None:
    small = digit(size=28, ink=255, paper=0)
    pixels = prepare(png(small), MNIST, digits=True)
    assert ink_box(pixels)[0] in (19, 20, 21)


def test_a_shadow_across_the_paper_is_not_ink() -> None:
    # Paper going from white to grey towards the right (a phone's shadow), a little noise.
    shade = np.linspace(255, 185, 200)[None, :] + np.zeros((200, 1))
    noise = np.random.default_rng(0).normal(0, 3, shade.shape)
    paper = np.clip(shade + noise, 0, 255).astype(np.uint8)
    photo_of_digit = np.minimum(paper, np.asarray(digit()))
    pixels = prepare(jpeg(Image.fromarray(photo_of_digit).convert("RGB")), MNIST, digits=True)
    assert max(ink_box(pixels)) in (19, 20, 21)  # the shadow did not join the digit
    assert pixels[:, -4:].max() == 0  # the darkest paper stays black


def test_a_digit_that_already_looks_like_mnist_comes_out_unchanged() -> None:
    # Soft stroke edges, as in MNIST and as the network learned them, are not cut away.
    soft = digit(size=28, ink=255, paper=0).filter(ImageFilter.GaussianBlur(0.8))
    once = prepare(png(soft), MNIST, digits=True)
    twice = prepare(png(Image.fromarray(once[:, :, 0])), MNIST, digits=True)
    assert np.abs(once.astype(int) - twice).max() <= 2


def test_stray_speck_does_not_shrink_the_digit() -> None:
    image = digit()
    image.putpixel((2, 197), 0)
    pixels = prepare(png(image), MNIST, digits=True)
    assert max(ink_box(pixels)) in (19, 20, 21)


def test_blank_picture_gives_an_empty_field() -> None:
    pixels = prepare(png(Image.new("L", (50, 50), 230)), MNIST, digits=True)
    assert pixels.shape == MNIST and pixels.max() == 0


def test_transparent_drawing_with_dark_strokes() -> None:
    drawing = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    drawing.putalpha(Image.eval(digit(), lambda v: 255 - v))  # strokes opaque black
    pixels = prepare(png(drawing), MNIST, digits=True)
    assert pixels[0].max() == 0 and pixels.max() == 255


# --- bad input -------------------------------------------------------------------------


def error_of(data: bytes, max_pixels: int = MAX_PIXELS) -> ImageError:
    with pytest.raises(ImageError) as info:
        imaging.prepare(data, CIFAR, digits=False, max_pixels=max_pixels)
    assert info.value.detail.endswith(".")
    return info.value


def test_empty_file() -> None:
    assert error_of(b"").status == 422


def test_not_an_image() -> None:
    error = error_of(b"hello, this is text\n" * 10)
    assert error.status == 415 and "JPEG" in error.detail


def test_formats_outside_the_list_are_not_opened() -> None:
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    assert error_of(eps).status == 415
    assert error_of(encode(photo(), "PPM")).status == 415


@pytest.mark.parametrize("data", [jpeg(), png()], ids=["jpeg", "png"])
def test_truncated_image(data: bytes) -> None:
    error = error_of(data[: len(data) // 2])
    assert error.status == 422 and "decoded" in error.detail


def test_size_is_checked_before_decoding() -> None:
    # The header says 100000 x 100000; decoding would fail (one row of data), so a 413
    # shows the check came first.
    error = error_of(png_with_size(100_000, 100_000))
    assert error.status == 413 and "pixels" in error.detail


def test_pixel_limit_is_the_settings_one() -> None:
    assert error_of(png(photo(100, 50)), max_pixels=4999).status == 413
    assert prepare(png(photo(100, 50))).shape == CIFAR


@pytest.mark.parametrize("limit", [1000, 3000])
def test_pillow_bomb_guard_is_a_413(limit: int) -> None:
    # Pillow's own check (a warning up to 2x its limit, an error beyond) also ends in 413.
    imaging.configure_pillow(limit)
    try:
        with pytest.raises(ImageError) as info:
            imaging.open_image(png(photo(100, 50)), max_pixels=10**9)
        assert info.value.status == 413
    finally:
        imaging.configure_pillow(MAX_PIXELS)
