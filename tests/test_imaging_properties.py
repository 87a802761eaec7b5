"""Properties of app/imaging.py, for any input: bytes become a valid input volume or an
ImageError with a documented status, never anything else; every image Pillow can write, in
any mode and size, becomes a valid volume; and large images decode within a memory budget.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

import model
from app import imaging
from benchmarks import hostile_corpus as corpus

REPO = Path(__file__).resolve().parents[1]
MAX_PIXELS = 2_000_000
SHAPES = {"cifar10": (32, 32, 3), "mnist": (28, 28, 1)}
STATUSES = {413, 415, 422}
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Real files' first bytes, so that random tails reach the decoders, not just the sniffers.
HEADERS = [
    corpus.encode(corpus.picture(12, 10), fmt, **options)
    for fmt, options in [
        ("JPEG", {}), ("PNG", {}), ("GIF", {}), ("WEBP", {}), ("BMP", {}), ("TIFF", {}),
        ("JPEG", {"progressive": True}), ("PNG", {"bits": 4}),
    ]
]  # fmt: skip


def assert_volume(pixels: np.ndarray, shape: tuple[int, int, int]) -> None:
    assert isinstance(pixels, np.ndarray)
    assert pixels.dtype == np.uint8 and pixels.shape == shape
    net = model.build("cifar10" if shape[2] == 3 else "mnist")
    x = net.preprocess(pixels[None])
    assert x.dtype == np.float32 and np.isfinite(x).all()


def assert_clean_error(error: imaging.ImageError) -> None:
    assert error.status in STATUSES
    assert isinstance(error.detail, str) and error.detail.endswith(".")
    assert "Traceback" not in error.detail and len(error.detail) < 400


uploads = st.one_of(
    st.binary(max_size=4096),
    st.builds(
        lambda header, cut, tail: header[:cut] + tail,
        st.sampled_from(HEADERS),
        st.integers(0, 4000),  # up to the whole file, then trailing junk
        st.binary(max_size=2048),
    ),
    st.builds(
        lambda header, flips: bytes(b ^ flips.get(i, 0) for i, b in enumerate(header)),
        st.sampled_from(HEADERS),
        st.dictionaries(st.integers(0, 700), st.integers(1, 255), max_size=6),
    ),
)


@FAST
@given(data=uploads, model_id=st.sampled_from(sorted(SHAPES)))
def test_any_bytes_give_a_volume_or_an_image_error(data: bytes, model_id: str) -> None:
    shape = SHAPES[model_id]
    try:
        pixels = imaging.prepare(data, shape, digits=model_id == "mnist", max_pixels=MAX_PIXELS)
    except imaging.ImageError as error:
        assert_clean_error(error)
    else:
        assert_volume(pixels, shape)


@FAST
@given(data=uploads)
def test_decode_gives_rgb_or_l_or_an_image_error(data: bytes) -> None:
    try:
        image = imaging.decode(data, MAX_PIXELS, hint=(32, 32))
    except imaging.ImageError as error:
        assert_clean_error(error)
    else:
        assert image.mode in ("RGB", "L") and min(image.size) >= 1


# Pillow modes, and the formats that can hold each.
WRITABLE = {
    "1": ["PNG", "BMP", "TIFF", "GIF"],
    "L": ["PNG", "JPEG", "BMP", "TIFF", "GIF", "WEBP"],
    "LA": ["PNG", "TIFF"],
    "P": ["PNG", "GIF", "BMP", "TIFF"],
    "RGB": ["PNG", "JPEG", "BMP", "TIFF", "GIF", "WEBP"],
    "RGBA": ["PNG", "TIFF", "WEBP", "BMP"],
    "CMYK": ["JPEG", "TIFF"],
    "I;16": ["PNG", "TIFF"],
    "I": ["PNG", "TIFF"],
    "F": ["TIFF"],
}
PAIRS = [(mode, fmt) for mode, formats in WRITABLE.items() for fmt in formats]


def make_image(mode: str, width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    if mode in ("I;16", "I", "F"):
        top = {"I;16": 65535, "I": 65535, "F": 1.0}[mode]
        values = rng.uniform(0, top, (height, width))
        array = values.astype({"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode])
        return Image.fromarray(array)  # uint16 -> I;16, int32 -> I, float32 -> F
    rgba = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    return Image.fromarray(rgba, "RGBA").convert(mode)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pair=st.sampled_from(PAIRS),
    width=st.one_of(st.integers(1, 80), st.integers(81, 700)),
    height=st.one_of(st.integers(1, 80), st.integers(81, 700)),
    seed=st.integers(0, 3),
    transparency=st.booleans(),
    model_id=st.sampled_from(sorted(SHAPES)),
)
def test_every_writable_image_becomes_a_volume(
    pair: tuple[str, str], width: int, height: int, seed: int, transparency: bool, model_id: str
) -> None:
    mode, fmt = pair
    image = make_image(mode, width, height, seed)
    options = {"transparency": 0} if transparency and mode == "P" and fmt in ("PNG", "GIF") else {}
    try:
        data = corpus.encode(image, fmt, **options)
    except (OSError, ValueError, KeyError):
        assume(False)  # a combination this Pillow cannot write
    shape = SHAPES[model_id]
    if max(width, height) > imaging.MAX_ASPECT * min(width, height):
        with pytest.raises(imaging.ImageError, match="times as long as it is wide") as refused:
            imaging.prepare(data, shape, digits=model_id == "mnist", max_pixels=MAX_PIXELS)
        assert refused.value.status == 422
        return
    pixels = imaging.prepare(data, shape, digits=model_id == "mnist", max_pixels=MAX_PIXELS)
    assert_volume(pixels, shape)


ALL_MODES = [
    "1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr",
    "LAB", "HSV", "I", "I;16", "I;16B", "I;16L", "F",
]  # fmt: skip


@FAST
@given(
    mode=st.sampled_from(ALL_MODES),
    width=st.integers(1, 60),
    height=st.integers(1, 60),
    model_id=st.sampled_from(sorted(SHAPES)),
)
def test_flatten_and_fit_any_mode_in_memory(
    mode: str, width: int, height: int, model_id: str
) -> None:
    try:
        image = Image.new(mode, (width, height))
    except ValueError:
        assume(False)
    try:
        flat = imaging.flatten(image)
    except imaging.ImageError as error:
        assert_clean_error(error)
        return
    assert flat.mode in ("RGB", "L") and flat.size == (width, height)
    shape = SHAPES[model_id]
    make = imaging.digit_input if model_id == "mnist" else imaging.photo_input
    assert_volume(make(flat, shape), shape)


def test_an_exif_orientation_on_a_one_pixel_image() -> None:
    exif = Image.Exif()
    exif[0x0112] = 8
    data = corpus.encode(Image.new("RGB", (1, 3), (10, 200, 30)), "JPEG", exif=exif.tobytes())
    assert_volume(imaging.prepare(data, (32, 32, 3), digits=False, max_pixels=10), (32, 32, 3))


# --- memory -----------------------------------------------------------------------------

MEASURE = """
import io, json, sys
import numpy as np
from PIL import Image
from app import imaging


def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024


mode, side = sys.argv[1], int(sys.argv[2])
array = np.zeros((side, side, 4), np.uint8) if mode == "RGBA" else np.zeros((side, side), np.uint16)
buffer = io.BytesIO()
Image.fromarray(array).save(buffer, "PNG", compress_level=1)
data = buffer.getvalue()
del array, buffer
with open("/proc/self/clear_refs", "w") as file:
    file.write("5")  # Linux: VmHWM (the peak) starts again from the current VmRSS
before = status("VmRSS")
imaging.prepare(data, (32, 32, 3), digits=False, max_pixels=side * side)
print(json.dumps({"peak_bytes": status("VmHWM") - before}))
"""


@pytest.mark.parametrize(
    ("mode", "budget"),
    # The decoded image takes 4 (RGBA) or 2 (16-bit) bytes a pixel and one converted copy
    # is needed (8 and 11 bytes a pixel in all); copying it whole at every step cost 20 and
    # 28 (float64 for 16-bit).
    [("RGBA", 12), ("I;16", 16)],
)
@pytest.mark.slow  # a subprocess per case
def test_large_images_decode_within_a_memory_budget(mode: str, budget: int) -> None:
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("measures the peak resident set through Linux /proc")
    side = 2500
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, mode, str(side)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    peak = json.loads(result.stdout)["peak_bytes"]
    assert peak / side**2 < budget, f"{peak / 2**20:.0f} MiB for {side}x{side} {mode}"
