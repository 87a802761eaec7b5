"""A walk over a JPEG's markers, a PNG's chunks or a GIF's blocks before any decoder sees
them, bounding the work the file can ask for.

    prescan.check(data)   # raises ScanError (413 or 422) for a JPEG, PNG or GIF past a bound

Some files cost far more to open than their size suggests, and are cheap to recognise
from their structure alone:

- a flood of metadata segments (JPEG APPn, COM): hundreds of thousands of tiny segments
  in a few megabytes, each of which Pillow's reader handles on its own Python path (and
  EXIF split over many segments, which it joins at a quadratic cost); the
  same for PNG's ancillary chunks (tEXt, unknown ones), GIF's extension blocks before
  the picture (comments, application data: Pillow reads each, and each of their 1 to 255
  byte sub-blocks, in Python), and JPEG fill bytes (0xFF padding, read one byte at a time);
- a scan bomb: a progressive JPEG with thousands of scans, each of which makes libjpeg
  pass over the whole coefficient buffer again (libjpeg has no scan limit of its own;
  libjpeg-turbo's djpeg has `-maxscans` for the same reason).

The walks read lengths only, and skip a JPEG's entropy-coded data with one regular
expression search per scan, so they cost microseconds per segment and milliseconds for
10 MB. A JPEG's walk stops at the first EOI: anything after it (an MPO's second picture,
a phone's embedded video) is not decoded either. The limits are far above what cameras,
phones and encoders write (a phone photo has under 20 segments; an optimised progressive
JPEG about 10 scans; Google's extended XMP depth maps fit in about 60 APP1 segments; a
PNG has a handful of ancillary chunks, and libpng writes one IDAT per 8 KiB; a GIF has a
graphic control extension and perhaps a comment and a NETSCAPE loop block). What no
walk can foresee, the decoding worker's deadline stops (app/decode_pool.py).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

MAX_METADATA_SEGMENTS = 256
# The EXIF standard puts EXIF in one APP1 segment; Pillow joins several by copying the
# whole so far for each, so 170 of them (11 MB) cost 2 s of copying.
MAX_EXIF_SEGMENTS = 16
MAX_SCANS = 100
MAX_SEGMENTS = 1024
MAX_FILL_BYTES = 4096
MAX_PNG_ANCILLARY = 256
MAX_PNG_CHUNKS = 65536
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GIF_SIGNATURES = (b"GIF87a", b"GIF89a")
# The sub-blocks of a GIF's extensions before its picture: 4 MiB of metadata in full
# 255-byte blocks, or an attacker's 1-byte ones.
MAX_GIF_SUBBLOCKS = 16384
# Chunks of the picture itself (and of an APNG's frames, which are not decoded).
PNG_DATA = {b"IDAT", b"fdAT", b"fcTL"}

SOI, EOI, SOS = 0xD8, 0xD9, 0xDA
# Markers without a length field: TEM, RST0-7 (SOI and EOI are handled on their own).
STANDALONE = {0x01, *range(0xD0, 0xD8)}
# The next marker after entropy-coded data: 0xFF not followed by a stuffed 0x00, a
# restart marker (which belongs to the scan) or a fill byte.
NEXT_MARKER = re.compile(rb"\xff(?=[^\x00\xd0-\xd7\xff])")
FILL = re.compile(rb"\xff+")


class ScanError(Exception):
    """A file refused by a walk; `status` is the HTTP status (app.imaging's ImageError)."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class JpegLayout:
    segments: int
    metadata_segments: int
    scans: int


def is_jpeg(data: bytes) -> bool:
    return data[:3] == b"\xff\xd8\xff"


def check(data: bytes) -> tuple[int, int] | None:
    """Walk a JPEG or a PNG (other formats pass); ScanError past a bound. Returns the size
    a WebP declares, which must be checked before Pillow opens it (see webp_size)."""
    if is_jpeg(data):
        check_jpeg(data)
    elif data.startswith(PNG_SIGNATURE):
        check_png(data)
    elif data[:6] in GIF_SIGNATURES:
        check_gif(data)
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return webp_size(data)
    return None


def webp_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a WebP's first chunk header, or None if it is not one we know.

    Pillow opens a WebP through libwebp's animation decoder, which allocates the whole
    canvas (width x height x 4 bytes) when it is created, before Pillow could check the
    size: a 40-byte file declaring 16383 x 16383 costs a gigabyte at open."""
    kind = data[12:16]
    if kind == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if kind == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        (bits,) = struct.unpack_from("<I", data, 21)
        return (bits & 0x3FFF) + 1, (bits >> 14 & 0x3FFF) + 1
    if kind == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack_from("<HH", data, 26)
        return width & 0x3FFF, height & 0x3FFF
    return None


def check_jpeg(
    data: bytes,
    max_metadata_segments: int = MAX_METADATA_SEGMENTS,
    max_scans: int = MAX_SCANS,
    max_segments: int = MAX_SEGMENTS,
) -> JpegLayout:
    """Walk the markers of a JPEG; ScanError 413 past a limit, 422 for a broken structure
    before the first scan (a stream cut inside a scan is left to the decoder)."""
    if not is_jpeg(data):
        raise ScanError(422, "The file does not start like a JPEG.")
    pos, end = 2, len(data)
    segments = metadata = scans = fill = exif = 0
    while pos < end:
        if data[pos] != 0xFF:
            if scans:
                # Entropy-coded data after a scan header: find the next marker.
                found = NEXT_MARKER.search(data, pos)
                if found is None:
                    break  # cut short inside a scan: the decoder says what it can
                pos = found.start()
                continue
            raise ScanError(422, "The JPEG's structure is damaged before its first scan.")
        padding = FILL.match(data, pos).end()  # a marker, after any number of fill bytes
        fill += padding - pos - 1
        pos = padding
        if fill > MAX_FILL_BYTES:
            raise ScanError(
                413, f"The JPEG has more than {MAX_FILL_BYTES:,} padding bytes between segments."
            )
        if pos >= end:
            break
        marker = data[pos]
        pos += 1
        if marker == EOI:
            break
        if marker in STANDALONE or marker == 0x00:
            continue
        if pos + 2 > end:
            break
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2:
            raise ScanError(422, "The JPEG has a segment with an impossible length.")
        segments += 1
        if segments > max_segments:
            raise ScanError(
                413, f"The JPEG has more than {max_segments:,} segments; this server reads fewer."
            )
        if marker == 0xE1 and data.startswith(b"Exif\x00\x00", pos + 2):
            exif += 1
            if exif > MAX_EXIF_SEGMENTS:
                raise ScanError(
                    413,
                    f"The JPEG carries its EXIF in more than {MAX_EXIF_SEGMENTS} segments "
                    "(the EXIF standard allows one); please send it without them.",
                )
        if 0xE0 <= marker <= 0xEF or marker == 0xFE:
            metadata += 1
            if metadata > max_metadata_segments:
                raise ScanError(
                    413,
                    f"The JPEG carries more than {max_metadata_segments:,} metadata segments "
                    "(EXIF, XMP, comments); please send it without most of its metadata.",
                )
        elif marker == SOS:
            scans += 1
            if scans > max_scans:
                raise ScanError(
                    413,
                    f"The JPEG has more than {max_scans:,} scans; cameras and encoders write "
                    "about 10, so this server reads no more than that limit.",
                )
        pos += length
    return JpegLayout(segments, metadata, scans)


def check_png(
    data: bytes, max_ancillary: int = MAX_PNG_ANCILLARY, max_chunks: int = MAX_PNG_CHUNKS
) -> int:
    """Walk a PNG's chunks up to IEND; ScanError 413 past a bound. Returns the chunk count.
    A structure cut short is left to the decoder (which says it is truncated)."""
    pos, end = len(PNG_SIGNATURE), len(data)
    chunks = ancillary = 0
    while pos + 8 <= end:
        length, kind = struct.unpack_from(">I4s", data, pos)
        chunks += 1
        if chunks > max_chunks:
            raise ScanError(413, f"The PNG has more than {max_chunks:,} chunks.")
        if kind not in PNG_DATA:
            ancillary += 1
            if ancillary > max_ancillary:
                raise ScanError(
                    413,
                    f"The PNG carries more than {max_ancillary:,} metadata chunks (text, EXIF, "
                    "others); please send it without most of its metadata.",
                )
        if kind == b"IEND":
            break
        pos += 12 + length
    return chunks


def check_gif(
    data: bytes,
    max_extensions: int = MAX_METADATA_SEGMENTS,
    max_subblocks: int = MAX_GIF_SUBBLOCKS,
) -> int:
    """Walk a GIF's extension blocks up to its first picture (the only one decoded);
    ScanError 413 past a bound. Returns the extension count. Anything else (the picture,
    a trailer, damage, a file cut short) is left to the decoder."""
    if len(data) < 13:
        return 0
    packed = data[10]
    pos = 13 + (3 << ((packed & 7) + 1) if packed & 0x80 else 0)  # after the global palette
    end = len(data)
    extensions = subblocks = 0
    while pos + 1 < end and data[pos] == 0x21:  # an extension: introducer, label, sub-blocks
        extensions += 1
        if extensions > max_extensions:
            raise ScanError(
                413,
                f"The GIF carries more than {max_extensions:,} extension blocks (comments, "
                "application data) before its picture; please send it without them.",
            )
        pos += 2
        while pos < end:
            size = data[pos]
            pos += 1 + size
            if size == 0:
                break
            subblocks += 1
            if subblocks > max_subblocks:
                raise ScanError(
                    413,
                    f"The GIF carries more than {max_subblocks:,} blocks of metadata before "
                    "its picture; please send it without them.",
                )
    return extensions
