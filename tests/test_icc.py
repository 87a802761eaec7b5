"""Colour management: an image's ICC profile is applied before the network sees it
(app/imaging.py to_srgb), checked with a profile that exchanges red and blue."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageCms

from app import imaging
from benchmarks import hostile_corpus as corpus

SWAP = corpus.srgb_swapping_red_and_blue()
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF", "WEBP"])
def test_a_profile_that_swaps_channels_swaps_them(fmt: str) -> None:
    image = Image.new("RGB", (40, 40), (230, 40, 10))
    options = {"quality": 100} if fmt in ("JPEG", "WEBP") else {}
    data = corpus.encode(image, fmt, icc_profile=SWAP, **options)
    pixels = imaging.prepare(data, (32, 32, 3), digits=False).astype(int)
    assert np.abs(pixels - [10, 40, 230]).max() <= 6, pixels[0, 0]


def test_an_srgb_profile_changes_nothing_and_no_profile_means_srgb() -> None:
    image = corpus.picture(40, 40)
    plain = imaging.prepare(corpus.encode(image, "PNG"), (32, 32, 3), digits=False)
    tagged = imaging.prepare(
        corpus.encode(image, "PNG", icc_profile=SRGB), (32, 32, 3), digits=False
    )
    assert np.abs(plain.astype(int) - tagged).max() <= 1


def test_transparency_survives_the_conversion() -> None:
    image = Image.new("RGBA", (40, 40), (230, 40, 10, 0))  # fully transparent: white
    data = corpus.encode(image, "PNG", icc_profile=SWAP)
    assert (imaging.prepare(data, (32, 32, 3), digits=False) >= 250).all()


def test_a_broken_profile_is_ignored_as_browsers_do() -> None:
    data = corpus.encode(Image.new("RGB", (40, 40), (230, 40, 10)), "PNG", icc_profile=b"junk")
    pixels = imaging.prepare(data, (32, 32, 3), digits=False)
    assert tuple(pixels[0, 0]) == (230, 40, 10)


def test_a_cmyk_jpeg_with_a_profile_becomes_rgb() -> None:
    image = corpus.picture().convert("CMYK")
    data = corpus.encode(image, "JPEG", icc_profile=SWAP)  # an RGB profile: does not fit CMYK
    assert imaging.prepare(data, (32, 32, 3), digits=False).shape == (32, 32, 3)
