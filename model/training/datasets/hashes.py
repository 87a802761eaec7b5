"""The sha256 that identifies a dataset: of its archive, or of a directory's files."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from pathlib import Path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def files_sha256(root: Path, names: Iterable[str]) -> str:
    """sha256 over sorted relative paths and contents (each length-prefixed, so unambiguous)."""
    digest = hashlib.sha256()
    for name in sorted(names):
        data = (root / name).read_bytes()
        digest.update(struct.pack(">Q", len(name.encode())) + name.encode())
        digest.update(struct.pack(">Q", len(data)) + data)
    return digest.hexdigest()
