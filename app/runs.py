"""Runs kept so their layers can be fetched again, in a directory every worker shares.

    store = RunStore(Path("/tmp/convscope-runs"), max_runs=64, max_bytes=256 * MB, ttl_seconds=3600)
    store.save(run_id, meta, pixels, volumes)
    with store.open(run_id) as run:
        run.meta, run.pixels(), run.layer(3)

One .npz file per run (no pickle): "meta" (JSON bytes), "input" (uint8 H, W, D) and
"layer<i>" (float32 H, W, D). Files are written under a temporary name and renamed with
os.replace, so a reader sees a whole run or nothing. After each save the writer evicts:
the newest runs are kept while they fit the count and byte budgets and are younger than
the time to live; everything older goes. Several processes may evict at once; that is
safe because eviction only unlinks, a file another process removed first is skipped, and
a reader that has a run open keeps reading it after it is unlinked (POSIX semantics).
Runs expire by age since they were made, not since they were last read.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, Request

RUN_ID = re.compile(r"[0-9a-f]{32}")
SUFFIX = ".npz"
TEMP_PREFIX = ".partial-"
# A temporary file this old was left by a writer that died; anyone may remove it.
STALE_TEMP_SECONDS = 600


class RunNotFound(LookupError):
    """No such run here: never made, evicted, or expired."""


def new_run_id() -> str:
    return uuid.uuid4().hex


class StoredRun:
    """An open run: its metadata now, its arrays on demand."""

    def __init__(self, arrays: np.lib.npyio.NpzFile, meta: dict[str, Any], expires_at: float):
        self._arrays = arrays
        self.meta = meta
        self.expires_at = expires_at

    @property
    def layer_count(self) -> int:
        return len(self.meta["layers"])

    def pixels(self) -> np.ndarray:
        """The preprocessed input, uint8 (H, W, D)."""
        return self._arrays["input"]

    def layer(self, index: int) -> np.ndarray:
        """Layer `index`'s volume, float32 (H, W, D); IndexError outside the layers."""
        if not 0 <= index < self.layer_count:
            raise IndexError(f"layer {index} is outside 0..{self.layer_count - 1}")
        return self._arrays[f"layer{index}"]


class RunStore:
    def __init__(self, directory: Path, max_runs: int, max_bytes: int, ttl_seconds: float):
        self.directory = Path(directory)
        self.max_runs = max_runs
        self.max_bytes = max_bytes
        self.ttl_seconds = ttl_seconds

    def path(self, run_id: str) -> Path:
        if not RUN_ID.fullmatch(run_id):
            raise RunNotFound(run_id)
        return self.directory / f"{run_id}{SUFFIX}"

    def save(
        self, run_id: str, meta: dict[str, Any], pixels: np.ndarray, volumes: list[np.ndarray]
    ) -> None:
        """Write one run atomically, then evict what no longer fits."""
        path = self.path(run_id)
        arrays = {
            "meta": np.frombuffer(json.dumps(meta).encode(), np.uint8),
            "input": pixels,
            **{f"layer{i}": volume for i, volume in enumerate(volumes)},
        }
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        temp = self.directory / f"{TEMP_PREFIX}{run_id}-{os.getpid()}-{threading.get_ident()}"
        try:
            with open(temp, "wb") as file:
                np.savez(file, **arrays)
            os.replace(temp, path)
        except BaseException:
            _unlink(temp)
            raise
        self.evict(keep=run_id)

    @contextmanager
    def open(self, run_id: str) -> Iterator[StoredRun]:
        """The run, readable until the block ends; RunNotFound if it is gone or expired."""
        try:
            file = open(self.path(run_id), "rb")
        except (FileNotFoundError, NotADirectoryError):
            raise RunNotFound(run_id) from None
        with file:
            made = os.fstat(file.fileno()).st_mtime
            if time.time() - made > self.ttl_seconds:
                _unlink(self.path(run_id))
                raise RunNotFound(run_id)
            try:
                arrays = np.load(file, allow_pickle=False)
                meta = json.loads(arrays["meta"].tobytes())
            except (OSError, ValueError, KeyError, zipfile.BadZipFile):
                # Not a run this version wrote (or damaged): as good as gone.
                raise RunNotFound(run_id) from None
            with arrays:
                yield StoredRun(arrays, meta, made + self.ttl_seconds)

    def evict(self, keep: str | None = None) -> int:
        """Remove expired runs and the oldest beyond the budgets; returns how many went.

        `keep` (the run just written) stays even if it alone is over the byte budget.
        """
        now = time.time()
        runs = []
        for entry in _scandir(self.directory):
            try:
                info = entry.stat()
            except FileNotFoundError:
                continue
            if entry.name.startswith(TEMP_PREFIX):
                if now - info.st_mtime > STALE_TEMP_SECONDS:
                    _unlink(Path(entry.path))
            elif entry.name.endswith(SUFFIX):
                runs.append((info.st_mtime_ns, entry.name, info.st_size))
        runs.sort(reverse=True)  # newest first
        kept = kept_bytes = removed = 0
        full = False
        for mtime_ns, name, size in runs:
            fits = (
                not full
                and now - mtime_ns / 1e9 <= self.ttl_seconds
                and kept < self.max_runs
                and kept_bytes + size <= self.max_bytes
            )
            if fits or name == f"{keep}{SUFFIX}":
                kept += 1
                kept_bytes += size
                continue
            full = True  # strictly oldest-first: nothing older than an evicted run stays
            removed += _unlink(self.directory / name)
        return removed

    def usage(self) -> tuple[int, int]:
        """(runs, bytes) on disk now."""
        count = size = 0
        for entry in _scandir(self.directory):
            if entry.name.endswith(SUFFIX) and not entry.name.startswith(TEMP_PREFIX):
                try:
                    size += entry.stat().st_size
                    count += 1
                except FileNotFoundError:
                    pass
        return count, size


def _scandir(directory: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(directory) as entries:
            return list(entries)
    except FileNotFoundError:
        return []


def _unlink(path: Path) -> int:
    try:
        os.unlink(path)
        return 1
    except FileNotFoundError:
        return 0


def get_run_store(request: Request) -> RunStore:
    return request.app.state.run_store


RunStoreDep = Annotated[RunStore, Depends(get_run_store)]
