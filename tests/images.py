"""Test images, made in memory with Pillow."""

import io
import struct
import zlib

import numpy as np
from PIL import Image, ImageDraw


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def photo(width: int = 64, height: int = 48, seed: int = 0) -> Image.Image:
    """Smooth colours plus a little noise: compresses like a photo, not like a flat fill."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack(
        [
            x * 255 / max(width - 1, 1),
            y * 255 / max(height - 1, 1),
            (x + y) * 127 / (width + height),
        ],
        axis=-1,
    )
    pixels = np.clip(pixels + rng.normal(0, 8, pixels.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def png(image: Image.Image | None = None) -> bytes:
    return encode(image or photo(), "PNG")


def jpeg(image: Image.Image | None = None, **options) -> bytes:
    return encode(image or photo(), "JPEG", quality=90, **options)


def digit(
    size: int = 200, ink: int = 0, paper: int = 255, offset: tuple[int, int] = (0, 0)
) -> Image.Image:
    """A thick hand-drawn-looking "7" on paper, away from the centre by `offset`."""
    image = Image.new("L", (size, size), paper)
    draw = ImageDraw.Draw(image)
    dx, dy = offset
    s = size / 200
    width = max(2, int(14 * s))
    draw.line([(60 * s + dx, 50 * s + dy), (140 * s + dx, 50 * s + dy)], fill=ink, width=width)
    draw.line([(140 * s + dx, 50 * s + dy), (90 * s + dx, 160 * s + dy)], fill=ink, width=width)
    return image


def png_with_size(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with one row of data: a decompression bomb
    that is harmless unless someone tries to decode it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    data = zlib.compress(b"\x00" * (width + 1))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )
