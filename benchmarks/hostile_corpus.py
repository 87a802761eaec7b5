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
            png_declaring(4100, 4100),
            413,
            "bomb.png",
            note="16,810,000 pixels: just over the 16.8-megapixel limit",
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


# --- hostile work: cheap to send, dear to decode (issue 13) ------------------------------


def jpeg_with_tiny_app1_segments(count: int, payload: bytes = b"Exif\x00\x00") -> bytes:
    """A 48x40 JPEG carrying `count` tiny APP1 segments (10 bytes each): a marker flood."""
    base = encode(picture(), "JPEG", quality=85)
    segment = b"\xff\xe1" + struct.pack(">H", 2 + len(payload)) + payload
    return base[:2] + segment * count + base[2:]


def jpeg_with_fill_bytes(count: int) -> bytes:
    """A JPEG with `count` 0xFF padding bytes before its first marker after SOI."""
    base = encode(picture(), "JPEG", quality=85)
    return base[:2] + b"\xff" * count + base[2:]


def jpeg_scan_bomb(side: int, scans: int) -> bytes:
    """A progressive JPEG with `scans` more (empty) scans before its EOI."""
    data = encode(Image.new("RGB", (side, side), (120, 30, 200)), "JPEG", progressive=True)
    sos = data.rfind(b"\xff\xda")
    (length,) = struct.unpack(">H", data[sos + 2 : sos + 4])
    eoi = data.rfind(b"\xff\xd9")
    return data[:eoi] + data[sos : sos + 2 + length] * scans + data[eoi:]


def png_with_text_chunks(count: int) -> bytes:
    """A PNG with `count` tiny tEXt chunks: a chunk flood (15 bytes each)."""
    return png_with_chunk_before_iend(
        encode(picture(), "PNG"), png_chunk(b"tEXt", b"k\x00v") * count
    )


def webp_lossless_declaring(width: int, height: int) -> bytes:
    """A lossless WebP whose VP8L header claims width x height: 40 bytes for 160 MB of RGBA."""
    bits = (width - 1) | (height - 1) << 14 | 1 << 28  # 14-bit sides, alpha used, version 0
    vp8l = b"\x2f" + struct.pack("<I", bits) + b"\x00" * 16
    chunk = b"VP8L" + struct.pack("<I", len(vp8l)) + vp8l
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def gif_with_extensions_before_image(extensions: bytes) -> bytes:
    data = encode(picture().convert("P"), "GIF")
    image = data.find(b"\x2c", 13 + 3 * 256)  # the image descriptor after the palette
    return data[:image] + extensions + data[image:]


def gif_with_comment_flood(count: int) -> bytes:
    """A GIF with `count` tiny comment extensions before its image (5 bytes each): Pillow
    reads each in Python, 13 s for 2,000,000 on a loaded 2-core machine."""
    return gif_with_extensions_before_image(b"\x21\xfe\x01x\x00" * count)


def gif_with_one_comment_in_tiny_blocks(count: int) -> bytes:
    """A GIF with one comment extension made of `count` sub-blocks of one byte each."""
    return gif_with_extensions_before_image(b"\x21\xfe" + b"\x01x" * count + b"\x00")


def srgb_swapping_red_and_blue() -> bytes:
    """An ICC profile: Pillow's sRGB with its red and blue colorants exchanged, so an image
    tagged with it and stored as (255, 0, 0) means sRGB's blue."""
    from PIL import ImageCms

    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    (count,) = struct.unpack_from(">I", profile, 128)
    entries = {}
    for i in range(count):
        at = 132 + 12 * i
        entries[bytes(profile[at : at + 4])] = at
    red, blue = entries[b"rXYZ"], entries[b"bXYZ"]
    profile[red + 4 : red + 12], profile[blue + 4 : blue + 12] = (
        profile[blue + 4 : blue + 12],
        profile[red + 4 : red + 12],
    )
    return bytes(profile)


def png_with_icc(rgb: tuple[int, int, int], icc: bytes) -> bytes:
    return encode(Image.new("RGB", (40, 40), rgb), "PNG", icc_profile=icc)


def _work_cases() -> list[Callable[[], Case]]:
    return [
        lambda: upload(
            "exif-segment-flood",
            jpeg_with_tiny_app1_segments(2_000),
            413,
            "flood.jpg",
            "image/jpeg",
            note="2,000 tiny EXIF segments (20 KB): over the 16 EXIF segments",
        ),  # fmt: skip
        lambda: upload(
            "exif-segment-flood-10mb",
            jpeg_with_tiny_app1_segments(1_000_000),
            413,
            "flood.jpg",
            "image/jpeg",
            note="1,000,000 EXIF segments (9.5 MiB): refused by the marker walk in a millisecond",
        ),  # fmt: skip
        lambda: upload(
            "xmp-segment-flood",
            jpeg_with_tiny_app1_segments(100_000, b"XMP\x00"),
            413,
            "flood.jpg",
            "image/jpeg",
            note="100,000 tiny non-EXIF APP1 segments (800 KB): over the 256 metadata segments",
        ),  # fmt: skip
        lambda: upload(
            "jpeg-fill-flood",
            jpeg_with_fill_bytes(1_000_000),
            413,
            "fill.jpg",
            "image/jpeg",
            note="1 MB of 0xFF padding, which Pillow reads a byte at a time",
        ),  # fmt: skip
        lambda: upload(
            "jpeg-scan-bomb",
            jpeg_scan_bomb(256, 8_000),
            413,
            "scans.jpg",
            "image/jpeg",
            note="a progressive JPEG with 8,000 scans (libjpeg has no scan limit)",
        ),  # fmt: skip
        lambda: upload(
            "png-text-flood",
            png_with_text_chunks(100_000),
            413,
            "text.png",
            note="100,000 tEXt chunks (1.5 MB)",
        ),  # fmt: skip
        lambda: upload(
            "webp-lossless-bomb",
            webp_lossless_declaring(16383, 2435),
            413,
            "wide.webp",
            "image/webp",
            note="16383x2435 declared in 40 bytes: over the 16.8-megapixel limit",
        ),  # fmt: skip
        lambda: upload(
            "png-one-row-40m",
            png_declaring(40_000_000, 1),
            413,
            "row.png",
            note="1 x 40,000,000 pixels",
        ),  # fmt: skip
        lambda: upload(
            "png-too-long",
            png_declaring(20_000, 100),
            422,
            "strip.png",
            note="200 times as long as it is wide: over the 32:1 limit",
        ),  # fmt: skip
        lambda: upload(
            "gif-comment-flood",
            gif_with_comment_flood(2_000_000),
            413,
            "comments.gif",
            "image/gif",
            note="2,000,000 comment blocks (10 MB): over the 256 extensions before the "
            "picture, refused by the block walk before Pillow reads one",
        ),  # fmt: skip
        lambda: upload(
            "gif-comment-in-tiny-blocks",
            gif_with_one_comment_in_tiny_blocks(1_000_000),
            413,
            "comments.gif",
            "image/gif",
            note="one comment in 1,000,000 one-byte blocks (2 MB): over the 16,384 blocks "
            "of metadata before the picture",
        ),  # fmt: skip
        lambda: upload(
            "gif-with-a-few-comments",
            gif_with_comment_flood(200),
            OK,
            "comments.gif",
            "image/gif",
            note="200 comments: under the bound, decoded",
        ),  # fmt: skip
        lambda: upload(
            "icc-swapping-channels",
            png_with_icc((255, 0, 0), srgb_swapping_red_and_blue()),
            OK,
            "p3.png",
            note="an ICC profile is applied: the model sees blue",
        ),  # fmt: skip
    ]


BUILDERS += _work_cases()
