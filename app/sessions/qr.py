"""The join link as a QR code, made here (segno: pure Python, no CDN, no network), so a
classroom without internet can still scan it. Dark modules on white with a four-module
quiet zone, as scanners expect, whatever the page's theme."""

from __future__ import annotations

import io
from typing import Annotated, Literal

import segno
from fastapi import Query

Kind = Literal["svg", "png"]
Scale = Annotated[int, Query(ge=1, le=32, description="Pixels (SVG units) per module.")]
MEDIA_TYPES = {"svg": "image/svg+xml", "png": "image/png"}


def encode(text: str, kind: Kind, scale: int = 8) -> tuple[bytes, str]:
    code = segno.make(text, error="m", micro=False)
    out = io.BytesIO()
    options = {"svgclass": None, "lineclass": None, "title": text} if kind == "svg" else {}
    code.save(out, kind=kind, scale=scale, border=4, dark="#000", light="#fff", **options)
    return out.getvalue(), MEDIA_TYPES[kind]
