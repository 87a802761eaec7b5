"""A walk over a JPEG's markers before any decoder sees it, bounding the work it can ask for.

    jpeg_scan.check(data)   # raises ScanError (413 or 422), or returns a JpegLayout

Two kinds of JPEG cost far more to open than their size suggests, and both are cheap to
recognise from the marker structure alone:

- a flood of metadata segments (APPn, COM): hundreds of thousands of tiny segments in a
  few megabytes, each of which Pillow's reader handles on its own Python path;
- a scan bomb: a progressive JPEG with thousands of scans, each of which makes libjpeg
  pass over the whole coefficient buffer again (libjpeg has no scan limit of its own;
  libjpeg-turbo's djpeg has `-maxscans` for the same reason).

The walk reads segment lengths only, and skips entropy-coded data with one regular
expression search per scan, so it costs microseconds per segment and milliseconds for
10 MB. It stops at the first EOI: anything after it (an MPO's second picture, a phone's
embedded video) is not decoded either. The limits are far above what cameras, phones
and encoders write (a phone photo has under 20 segments; an optimised progressive JPEG
about 10 scans; Google's extended XMP depth maps fit in about 60 APP1 segments).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

MAX_METADATA_SEGMENTS = 256
MAX_SCANS = 100
MAX_SEGMENTS = 1024

SOI, EOI, SOS = 0xD8, 0xD9, 0xDA
# Markers without a length field: TEM, RST0-7 (SOI and EOI are handled on their own).
STANDALONE = {0x01, *range(0xD0, 0xD8)}
# The next marker after entropy-coded data: 0xFF not followed by a stuffed 0x00, a
# restart marker (which belongs to the scan) or a fill byte.
NEXT_MARKER = re.compile(rb"\xff(?=[^\x00\xd0-\xd7\xff])")


class ScanError(Exception):
    """A JPEG refused by the walk; `status` is the HTTP status (app.imaging's ImageError)."""

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


def check(
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
    segments = metadata = scans = 0
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
        while pos < end and data[pos] == 0xFF:  # fill bytes
            pos += 1
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
