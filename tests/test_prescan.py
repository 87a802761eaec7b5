"""The marker and chunk walks (app/prescan.py) against files whose structure is known:
every real encoder's output passes with the counts it has, and each flood or bomb is
refused past its bound, in a few milliseconds whatever its size."""

from __future__ import annotations

import io
import struct
import time

import pytest
from PIL import Image

from app import prescan
from benchmarks import hostile_corpus as corpus


def segments_by_reference(data: bytes) -> tuple[int, int]:
    """(metadata segments, scans) by a slow byte-by-byte walk, the obvious way."""
    metadata = scans = 0
    i, in_scan = 2, False
    while i < len(data) - 1:
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker == 0xFF or (in_scan and (marker == 0x00 or 0xD0 <= marker <= 0xD7)):
            i += 1 if marker == 0xFF else 2
            continue
        if marker == 0xD9:
            break
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        metadata += 0xE0 <= marker <= 0xEF or marker == 0xFE
        if marker == 0xDA:
            scans += 1
            in_scan = True
        i += 2 + length
    return metadata, scans


@pytest.mark.parametrize(
    "options",
    [
        {"quality": 90},
        {"quality": 75, "progressive": True},
        {"quality": 95, "optimize": True, "progressive": True},
        {"quality": 85, "exif": corpus.exif_blob(2000), "comment": b"hello"},
        {"quality": 85, "icc_profile": corpus.srgb_swapping_red_and_blue()},
        {"quality": 85, "restart_marker_blocks": 1},
    ],
    ids=["baseline", "progressive", "optimised", "exif-comment", "icc", "restarts"],
)
def test_real_jpegs_pass_with_the_counts_they_have(options: dict) -> None:
    data = corpus.encode(corpus.picture(200, 120), "JPEG", **options)
    layout = prescan.check_jpeg(data)
    assert (layout.metadata_segments, layout.scans) == segments_by_reference(data)
    assert layout.scans >= (2 if options.get("progressive") else 1)


def test_a_cmyk_jpeg_and_a_grey_one_pass() -> None:
    for mode in ("CMYK", "L"):
        prescan.check(corpus.encode(corpus.picture().convert(mode), "JPEG"))


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (corpus.jpeg_with_tiny_app1_segments(257, b"XMP\0"), "more than 256 metadata segments"),
        (corpus.jpeg_with_tiny_app1_segments(1_000_000), "EXIF in more than 16 segments"),
        (corpus.jpeg_with_app1_segments(17 * 65_000), "EXIF in more than 16 segments"),
        (corpus.jpeg_scan_bomb(64, 100), "more than 100 scans"),
        (corpus.jpeg_with_fill_bytes(5_000), "padding bytes"),
        (corpus.png_with_text_chunks(257), "more than 256 metadata chunks"),
        (corpus.gif_with_comment_flood(257), "more than 256 extension blocks"),
        (corpus.gif_with_comment_flood(2_000_000), "more than 256 extension blocks"),
        (corpus.gif_with_one_comment_in_tiny_blocks(16_385), "more than 16,384 blocks"),
    ],
    ids=[
        "257-segments",
        "a-million",
        "17-exif",
        "scan-bomb",
        "fill",
        "png-text",
        "gif-257-comments",
        "gif-comment-flood",
        "gif-tiny-blocks",
    ],  # fmt: skip
)
def test_floods_and_bombs_are_refused_at_once(data: bytes, words: str) -> None:
    started = time.process_time()
    with pytest.raises(prescan.ScanError, match=words) as refused:
        prescan.check(data)
    assert refused.value.status == 413 and refused.value.detail.endswith(".")
    assert time.process_time() - started < 0.5


def test_just_under_the_bounds_passes() -> None:
    prescan.check(corpus.jpeg_with_tiny_app1_segments(250, b"XMP\0"))
    prescan.check(corpus.jpeg_with_tiny_app1_segments(15))
    prescan.check(corpus.jpeg_with_fill_bytes(4_000))
    prescan.check(corpus.png_with_text_chunks(250))
    assert prescan.check_gif(corpus.gif_with_comment_flood(255)) == 255
    prescan.check_gif(corpus.gif_with_one_comment_in_tiny_blocks(16_000))
    layout = prescan.check_jpeg(corpus.jpeg_scan_bomb(64, 50))
    assert layout.scans == segments_by_reference(corpus.jpeg_scan_bomb(64, 50))[1]


def test_a_jpeg_broken_before_its_first_scan_is_422_and_a_cut_scan_is_left_to_pillow() -> None:
    data = corpus.encode(corpus.picture(), "JPEG")
    with pytest.raises(prescan.ScanError) as broken:
        prescan.check_jpeg(data[:4] + b"\x00garbage" + data[4:])
    assert broken.value.status == 422
    prescan.check_jpeg(data[: len(data) // 2])  # inside the scan: Pillow says "truncated"


@pytest.mark.parametrize("options", [{"lossless": True}, {"quality": 80}, {"exif": b"Exif\0\0"}])
def test_webp_sizes_match_pillows(options: dict) -> None:
    data = corpus.encode(corpus.picture(123, 45).convert("RGBA"), "WEBP", **options)
    assert prescan.webp_size(data) == Image.open(io.BytesIO(data)).size == (123, 45)
    assert prescan.webp_size(corpus.webp_lossless_declaring(16383, 2435)) == (16383, 2435)


def extensions_by_reference(data: bytes) -> int:
    """Extension blocks before the first picture, read the obvious way from a file object."""
    raw = io.BytesIO(data)
    raw.seek(10)
    packed = raw.read(3)[0]
    if packed & 0x80:
        raw.read(3 * 2 ** ((packed & 7) + 1))
    seen = 0
    while raw.read(1) == b"\x21":
        seen += 1
        raw.read(1)  # the label
        while size := raw.read(1)[0]:
            raw.read(size)
    return seen


@pytest.mark.parametrize(
    "options",
    [{}, {"comment": b"hello"}, {"comment": b"x" * 1000}, {"save_all": True, "loop": 0}],
    ids=["plain", "comment", "long-comment", "animated"],
)
def test_real_gifs_pass_with_the_extensions_they_have(options: dict) -> None:
    frames = [corpus.picture(60, 40).convert("P"), corpus.picture(40, 60).convert("P")]
    if options.get("save_all"):
        options = {**options, "append_images": frames[1:]}
    data = corpus.encode(frames[0], "GIF", **options)
    assert prescan.check_gif(data) == extensions_by_reference(data)
    if "comment" in options:
        assert Image.open(io.BytesIO(data)).info["comment"] == options["comment"]
        assert prescan.check_gif(data) >= 1
