"""Hostile and odd uploads, each built in memory by a function here (no binary files).

    for case in corpus.cases():
        body, content_type = case.body()
        client.post(url, content=body, headers={"content-type": content_type})
        assert response.status_code in case.expected

A case is one request to `POST /api/models/{id}/forward`: the form's parts (field name,
filename, bytes, part Content-Type) and the statuses the README documents for it. Bodies
are assembled by hand, not by an HTTP client, so hostile filenames reach the server as
sent. `benchmarks/load.py --hostile` mixes these cases into its uploads.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

FIELD = "image"
BOUNDARY = "convscope-hostile-7d41"
MIB = 1 << 20
# Written into a filename: the server must never send it back unescaped.
SCRIPT = "<script>alert('convscope')</script>"
HOSTILE_FILENAME = f'../..\\..\\etc/passwd"; name="x{SCRIPT}.png'


@dataclass(frozen=True)
class Part:
    name: str
    filename: str | None
    data: bytes
    content_type: str | None = "application/octet-stream"

    def encode(self) -> bytes:
        disposition = f'form-data; name="{self.name}"'
        if self.filename is not None:
            quoted = self.filename.replace("\\", "\\\\").replace('"', '\\"')
            disposition += f'; filename="{quoted}"'
        headers = f"Content-Disposition: {disposition}\r\n"
        if self.content_type:
            headers += f"Content-Type: {self.content_type}\r\n"
        return headers.encode() + b"\r\n" + self.data


@dataclass(frozen=True)
class Case:
    name: str
    parts: tuple[Part, ...]
    expected: frozenset[int]
    # The request's Content-Type when it is not the multipart form.
    request_content_type: str | None = None
    raw_body: bytes | None = None
    note: str = field(default="", compare=False)

    @property
    def data(self) -> bytes:
        return self.parts[0].data if self.parts else (self.raw_body or b"")

    @property
    def filename(self) -> str | None:
        return self.parts[0].filename if self.parts else None

    @property
    def content_type(self) -> str | None:
        return self.parts[0].content_type if self.parts else None

    def body(self) -> tuple[bytes, str]:
        """(request body, request Content-Type)."""
        if self.raw_body is not None:
            return self.raw_body, self.request_content_type or "application/octet-stream"
        delimiter = f"--{BOUNDARY}\r\n".encode()
        body = b"".join(delimiter + part.encode() + b"\r\n" for part in self.parts)
        body += f"--{BOUNDARY}--\r\n".encode()
        content_type = self.request_content_type or f"multipart/form-data; boundary={BOUNDARY}"
        return body, content_type


def upload(
    name: str,
    data: bytes,
    expected: set[int] | int,
    filename: str = "upload.png",
    content_type: str | None = "image/png",
    note: str = "",
) -> Case:
    statuses = frozenset({expected} if isinstance(expected, int) else expected)
    return Case(name, (Part(FIELD, filename, data, content_type),), statuses, note=note)


# --- images -----------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def picture(width: int = 48, height: int = 40, seed: int = 0) -> Image.Image:
    """Gradients and noise, so encoders produce photo-like data."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 / max(width - 1, 1), y * 255 / max(height - 1, 1), (x * y) % 256], -1)
    rgb = np.clip(rgb + rng.normal(0, 10, rgb.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


def png_chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def png_with_chunk_before_iend(png: bytes, chunk: bytes) -> bytes:
    """A PNG with one more chunk just after IHDR (where eXIf and tEXt may go)."""
    ihdr_end = 8 + 8 + 13 + 4
    return png[:ihdr_end] + chunk + png[ihdr_end:]


def png_declaring(width: int, height: int) -> bytes:
    """A 100-byte PNG whose header claims width x height grey pixels: a decompression bomb."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header (SOF0) is rewritten to claim width x height."""
    data = bytearray(encode(picture(16, 16), "JPEG", quality=80))
    sof = data.find(b"\xff\xc0")
    # SOFn: marker, length (2), precision (1), height (2), width (2)
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def exif_blob(size: int) -> bytes:
    """A valid little-endian TIFF/EXIF block, padded to `size` bytes with a UserComment-ish
    payload that no tag points into (an EXIF parser must not care)."""
    exif = Image.Exif()
    exif[0x0112] = 1  # orientation: upright
    exif[0x010E] = "x" * 32  # ImageDescription
    block = exif.tobytes()
    return block + b"\x00" * max(0, size - len(block))


def jpeg_with_exif(size: int) -> bytes:
    """A JPEG with one APP1 EXIF segment of about `size` bytes (a segment holds < 64 KiB)."""
    exif = Image.Exif()
    exif[0x0112] = 1
    exif[0x927C] = b"M" * (size - 64)  # MakerNote: opaque bytes
    return encode(picture(), "JPEG", quality=85, exif=exif.tobytes())


def jpeg_with_app1_segments(total: int) -> bytes:
    """A JPEG carrying `total` bytes of EXIF-like data in many APP1 segments (each at most
    65,533 bytes of payload): the only way to put megabytes of metadata in a JPEG."""
    base = encode(picture(), "JPEG", quality=85)
    payload = 65_000
    segment = (
        b"\xff\xe1" + struct.pack(">H", payload + 2) + b"Exif\x00\x00" + b"\x00" * (payload - 6)
    )
    count = -(-total // payload)
    return base[:2] + segment * count + base[2:]


def png_with_big_exif(size: int) -> bytes:
    """A PNG whose eXIf chunk holds `size` bytes."""
    return png_with_chunk_before_iend(encode(picture(), "PNG"), png_chunk(b"eXIf", exif_blob(size)))


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    return data[: int(len(data) * keep)]


def palette_png_with_transparency() -> bytes:
    image = picture().convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return encode(image, "PNG", transparency=0)


def png_16bit() -> bytes:
    ramp = (np.arange(40 * 48, dtype=np.uint32).reshape(40, 48) * 34).astype(np.uint16)
    return encode(Image.fromarray(ramp), "PNG")


def animated_gif() -> bytes:
    frames = [picture(seed=s).convert("P") for s in range(4)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)


def tiff_grey_premultiplied_alpha() -> bytes:
    """A grey TIFF whose alpha is marked associated (ExtraSamples = 1): Pillow opens it in
    its rare "La" mode."""
    data = bytearray(encode(Image.new("LA", (24, 20), (90, 128)), "TIFF"))
    tag = data.find(struct.pack("<HHI", 338, 3, 1))  # ExtraSamples, SHORT, one value
    data[tag + 8 : tag + 10] = struct.pack("<H", 1)
    return bytes(data)


def multipage_tiff() -> bytes:
    pages = [picture(seed=s) for s in range(3)]
    return encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])


SVG = b"""<?xml version="1.0"?>
<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32" onload="alert(1)">
  <script>alert('svg')</script><rect width="32" height="32" fill="red"/>
</svg>
"""
HTML = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>\n"


def pdf() -> bytes:
    """A real one-page PDF (Pillow's writer), to be sent renamed as .png."""
    return encode(picture(), "PDF")


# --- the corpus -------------------------------------------------------------------------

OK = 200


def cases() -> list[Case]:
    """Every case, built now (a few MB in all; the two 10 MB ones dominate)."""
    return [build() for build in BUILDERS]


def small_cases() -> list[Case]:
    """The cases under 1 MB, for load runs."""
    return [case for case in cases() if len(case.body()[0]) < MIB]


def _image_cases() -> list[Callable[[], Case]]:
    png = encode(picture(), "PNG")
    jpeg = encode(picture(), "JPEG", quality=90)
    return [
        lambda: upload("zero-bytes", b"", 422, "empty.png"),
        lambda: upload("one-pixel", encode(Image.new("RGB", (1, 1), (9, 99, 199)), "PNG"), OK),
        lambda: upload("truncated-jpeg", truncated(jpeg), 422, "cut.jpg", "image/jpeg"),
        lambda: upload("truncated-jpeg-header", jpeg[:40], 422, "cut.jpg", "image/jpeg"),
        lambda: upload("truncated-png", truncated(png), 422, "cut.png"),
        lambda: upload("png-bomb", png_declaring(100_000, 100_000), 413, "bomb.png"),
        lambda: upload(
            "png-bomb-just-over",
            png_declaring(8000, 5001),
            413,
            "bomb.png",
            note="40,008,000 pixels: one row over the limit",
        ),  # fmt: skip
        lambda: upload("jpeg-bomb", jpeg_declaring(65_000, 65_000), 413, "bomb.jpg", "image/jpeg"),
        lambda: upload("cmyk-jpeg", encode(picture().convert("CMYK"), "JPEG"), OK, "cmyk.jpg"),
        lambda: upload("png-16-bit", png_16bit(), OK, "deep.png"),
        lambda: upload("palette-png-transparent", palette_png_with_transparency(), OK),
        lambda: upload("animated-gif", animated_gif(), OK, "anim.gif", "image/gif"),
        lambda: upload("multipage-tiff", multipage_tiff(), OK, "pages.tiff", "image/tiff"),
        lambda: upload("tiff-premultiplied-alpha", tiff_grey_premultiplied_alpha(), OK, "a.tif"),
        lambda: upload("webp", encode(picture(), "WEBP", quality=80), OK, "a.webp", "image/webp"),
        lambda: upload("svg", SVG, 415, "drawing.svg", "image/svg+xml"),
        lambda: upload("html", HTML, 415, "page.html", "text/html"),
        lambda: upload("pdf-renamed-png", pdf(), 415, "homework.png", "image/png"),
        lambda: upload("exif-60kb-jpeg", jpeg_with_exif(60_000), OK, "camera.jpg", "image/jpeg"),
        lambda: upload(
            "exif-10mb-png",
            png_with_big_exif(10_000_000),
            OK,
            "camera.png",
            note="10,000,000 bytes of eXIf: under the 10 MiB upload limit, so accepted",
        ),  # fmt: skip
        lambda: upload(
            "exif-11mb-jpeg",
            jpeg_with_app1_segments(11 * MIB),
            413,
            "camera.jpg",
            "image/jpeg",
            note="170 APP1 segments, over the 10 MiB upload limit",
        ),  # fmt: skip
        lambda: upload("hostile-filename", png, OK, HOSTILE_FILENAME),
        lambda: upload("hostile-filename-not-image", HTML, 415, HOSTILE_FILENAME, "text/html"),
        lambda: upload("wrong-part-content-type", png, OK, "a.png", "application/pdf"),
        lambda: upload("no-part-content-type", png, OK, "a.png", None),
    ]


def _form_cases() -> list[Callable[[], Case]]:
    png = encode(picture(), "PNG")
    return [
        lambda: Case(
            "wrong-request-content-type",
            (Part(FIELD, "a.png", png, "image/png"),),
            frozenset({415}),
            request_content_type="text/plain",
        ),
        lambda: Case("raw-png-body", (), frozenset({415}), "image/png", raw_body=png),
        lambda: Case("missing-field", (Part("file", "a.png", png, "image/png"),), frozenset({422})),
        lambda: Case("empty-form", (), frozenset({422})),
        lambda: Case(
            "two-files",
            (Part(FIELD, "a.png", png, "image/png"), Part(FIELD, "b.html", HTML, "text/html")),
            frozenset({OK}),
            note="the first part named image is used",
        ),
        lambda: Case(
            "two-files-first-bad",
            (Part(FIELD, "b.html", HTML, "text/html"), Part(FIELD, "a.png", png, "image/png")),
            frozenset({415}),
        ),
        lambda: Case(
            "no-boundary",
            (Part(FIELD, "a.png", png, "image/png"),),
            frozenset({422}),
            request_content_type="multipart/form-data",
        ),
        lambda: Case(
            "unterminated-multipart",
            (),
            frozenset({422}),
            f"multipart/form-data; boundary={BOUNDARY}",
            raw_body=f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=image\r\n".encode()
            + b"\x00" * 64,
        ),
    ]


BUILDERS: list[Callable[[], Case]] = [*_image_cases(), *_form_cases()]
