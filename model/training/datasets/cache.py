"""Decoded image folders kept as .npz files (no pickle), so the second load is fast."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from model.training.datasets.dataset import Dataset
from model.training.datasets.tree import Tree

_CACHE_VERSION = 1  # bump when the decoded arrays would change for the same input


def default_cache_dir() -> Path:
    """$CONVSCOPE_CACHE_DIR, else $XDG_CACHE_HOME/convscope, else ~/.cache/convscope."""
    if os.environ.get("CONVSCOPE_CACHE_DIR"):
        return Path(os.environ["CONVSCOPE_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "convscope"


def cache_path(path: Path, archive_sha256: str | None, options: dict, cache_dir) -> Path:
    # An archive is keyed by its contents. A directory by its files' names, sizes and
    # modification times: hashing 50,000 small files would cost more than the cache saves.
    if archive_sha256:
        source = archive_sha256
    else:
        source = [str(path.resolve())]
        for name in Tree(path).files:
            stat = (path / name).stat()
            source.append((name, stat.st_size, stat.st_mtime_ns))
    key = json.dumps([_CACHE_VERSION, source, options], sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", path.name)[:40]
    return Path(cache_dir or default_cache_dir()) / f"{stem}-{options['split']}-{digest}.npz"


def read_cache(cache_file: Path, path: Path, split: str) -> Dataset | None:
    try:
        with np.load(cache_file, allow_pickle=False) as npz:
            return Dataset(
                npz["images"],
                npz["labels"],
                npz["classes"].tolist(),
                str(path),
                str(npz["sha256"]),
                split,
                str(npz["format"]),
            )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None  # a broken cache file is rebuilt, not fatal


def write_cache(cache_file: Path, dataset: Dataset) -> None:
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    # write then rename, so a concurrent reader never sees half a file
    fd, tmp = tempfile.mkstemp(dir=cache_file.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(
                f,
                images=dataset.images,
                labels=dataset.labels,
                classes=np.array(dataset.classes, dtype=str),
                sha256=np.array(dataset.sha256),
                format=np.array(dataset.format),
            )
        os.replace(tmp, cache_file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
