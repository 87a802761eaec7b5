"""Runs kept so their layers can be fetched again, in a directory every worker shares.

    store = RunStore(Path("/tmp/convscope-runs"), max_runs=64, max_bytes=256 * MB, ttl_seconds=3600)
    store.save(run_id, meta, pixels)            # the server stores no volumes (see below)
    with store.open(run_id) as run:
        run.meta, run.pixels()

The server saves a run's record and input only: its volumes are recomputed when asked for
(app/run_volumes.py), which costs less than writing a megabyte per run. The store can
still hold volumes ("layer<i>" arrays), and reads them back with run.layer(i).

One file per run: a small JSON header (the run's metadata and where each array lies) then
the raw arrays, "input" (uint8 H, W, D) and "layer<i>" (float32 H, W, D); a reader seeks
to the one array it wants. Files are written under a temporary name and renamed with
os.replace, so a reader sees a whole run or nothing. After each save the writer evicts:
the newest runs are kept while they fit the count and byte budgets and are younger than
the time to live; everything older goes. A writer lists the directory at most once every
RESCAN_SECONDS and in between evicts from that listing plus its own saves (listing and
stat'ing 64 files cost a third of a save), so runs other processes saved since its last
listing can keep the store over its budgets for up to that long; `evict()` called
directly always lists the directory. Several processes may evict at once; that is
safe because eviction only unlinks, a file another process removed first is skipped, and
a reader that has a run open keeps reading it after it is unlinked (POSIX semantics).
Runs expire by age since they were made, not since they were last read.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import numpy as np
from fastapi import Depends, Request

RUN_ID = re.compile(r"[0-9a-f]{32}")
SUFFIX = ".run"
MAGIC = b"CONVSCOPE-RUN-1\n"
ALIGN = 64
MAX_HEADER = 1 << 20
TEMP_PREFIX = ".partial-"
# A temporary file this old was left by a writer that died; anyone may remove it.
STALE_TEMP_SECONDS = 600
# How long a writer evicts from its last listing of the directory before listing it again.
RESCAN_SECONDS = 1.0


class RunNotFound(LookupError):
    """No such run here: never made, evicted, or expired."""


def new_run_id() -> str:
    return uuid.uuid4().hex


def _write_run(file: BinaryIO, meta: dict[str, Any] | bytes, arrays: dict[str, np.ndarray]) -> int:
    """MAGIC, the header's length (8 bytes, little-endian), the JSON header, then each
    array's bytes, C order, at the offset (from the start of the file) the header gives.
    `meta`: a dict, or the JSON of one (a record's dump_json: an eighth of json.dumps's
    CPU). Returns the file's size."""
    layout, offset = {}, 0
    for name, array in arrays.items():
        layout[name] = {"dtype": array.dtype.str, "shape": list(array.shape), "offset": offset}
        offset += -(-array.nbytes // ALIGN) * ALIGN
    meta_json = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    header = b'{"meta":%s,"arrays":%s}' % (meta_json, json.dumps(layout).encode())
    start = -(-(len(MAGIC) + 8 + len(header)) // ALIGN) * ALIGN
    header += b" " * (start - len(MAGIC) - 8 - len(header))
    # One writev for the whole file (the arrays' own memory, zero padding between them):
    # a seek and a write per array cost a third more (BENCHMARKS.md).
    pieces: list[bytes | memoryview] = [MAGIC + len(header).to_bytes(8, "little") + header]
    for array in arrays.values():
        if pad := -sum(map(len, pieces)) % ALIGN:
            pieces.append(bytes(pad))
        pieces.append(np.ascontiguousarray(array).data.cast("B"))
    size = sum(map(len, pieces))
    try:
        fd = file.fileno()
    except (AttributeError, io.UnsupportedOperation):  # an in-memory file (app/runs_redis.py)
        file.writelines(pieces)
        return size
    file.flush()
    _writev(fd, pieces)
    file.truncate(size)
    return size


def _writev(fd: int, pieces: list[bytes | memoryview]) -> None:
    """All of `pieces`, in order, at the file's position (writev may write only a part)."""
    views = [memoryview(piece) for piece in pieces]
    while views:
        written = os.writev(fd, views[:1024])
        while views and written >= len(views[0]):
            written -= len(views.pop(0))
        if written:
            views[0] = views[0][written:]


def _read_header(file: BinaryIO) -> tuple[dict[str, Any], int]:
    """The header and where the arrays start; ValueError if this is not a run file."""
    if file.read(len(MAGIC)) != MAGIC:
        raise ValueError("not a run file")
    size = int.from_bytes(file.read(8), "little")
    if size > MAX_HEADER:
        raise ValueError("the run file's header is implausibly large")
    header = json.loads(file.read(size))
    return header, len(MAGIC) + 8 + size


class StoredRun:
    """An open run: its metadata now, its arrays on demand."""

    def __init__(self, file: BinaryIO, header: dict[str, Any], start: int, expires_at: float):
        self._file = file
        self._arrays = header["arrays"]
        self._start = start
        self.meta = header["meta"]
        self.expires_at = expires_at

    def _array(self, name: str) -> np.ndarray:
        info = self._arrays[name]
        dtype, shape = np.dtype(info["dtype"]), tuple(info["shape"])
        count = int(np.prod(shape))
        self._file.seek(self._start + info["offset"])
        data = self._file.read(count * dtype.itemsize)
        if len(data) != count * dtype.itemsize:
            raise RunNotFound("the run file is cut short")
        return np.frombuffer(data, dtype).reshape(shape)

    @property
    def layer_count(self) -> int:
        return len(self.meta["layers"])

    @property
    def has_volumes(self) -> bool:
        """Whether the file holds the layers' volumes (or only the input)."""
        return "layer0" in self._arrays

    def pixels(self) -> np.ndarray:
        """The preprocessed input, uint8 (H, W, D)."""
        return self._array("input")

    def layer(self, index: int) -> np.ndarray:
        """Layer `index`'s volume, float32 (H, W, D); IndexError outside the layers."""
        if not 0 <= index < self.layer_count:
            raise IndexError(f"layer {index} is outside 0..{self.layer_count - 1}")
        return self._array(f"layer{index}")


class RunStore:
    def __init__(self, directory: Path, max_runs: int, max_bytes: int, ttl_seconds: float):
        self.directory = Path(directory)
        self.max_runs = max_runs
        self.max_bytes = max_bytes
        self.ttl_seconds = ttl_seconds
        # The last listing, newest first, as (mtime_ns, name, size), and when it was made.
        self._listing: deque[tuple[int, str, int]] | None = None
        self._listed_bytes = 0
        self._listed_at = 0.0
        self._listing_lock = threading.Lock()

    def path(self, run_id: str) -> Path:
        if not RUN_ID.fullmatch(run_id):
            raise RunNotFound(run_id)
        return self.directory / f"{run_id}{SUFFIX}"

    def save(
        self,
        run_id: str,
        meta: dict[str, Any] | bytes,
        pixels: np.ndarray,
        volumes: list[np.ndarray] | tuple = (),
    ) -> None:
        """Write one run atomically, then evict what no longer fits."""
        path = self.path(run_id)
        arrays = {"input": pixels, **{f"layer{i}": volume for i, volume in enumerate(volumes)}}
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        temp = self.directory / f"{TEMP_PREFIX}{run_id}-{os.getpid()}-{threading.get_ident()}"
        for attempt in range(2):
            try:
                with open(temp, "wb") as file:
                    size = _write_run(file, meta, arrays)
                os.replace(temp, path)
                break
            except OSError as error:
                _unlink(temp)
                # A full disk: the oldest runs make room, once, so the store recovers.
                if attempt or error.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                if not self.make_room():
                    raise
            except BaseException:
                _unlink(temp)
                raise
        self._evict_after_save((time.time_ns(), path.name, size))

    def make_room(self) -> int:
        """Evict the older half of the runs (at least one), for a full disk; how many went."""
        runs = []
        for entry in _scandir(self.directory):
            if entry.name.endswith(SUFFIX) and not entry.name.startswith(TEMP_PREFIX):
                try:
                    runs.append((entry.stat().st_mtime_ns, entry.name))
                except FileNotFoundError:
                    pass
        runs.sort()
        self._listing = None  # list again after this
        return sum(_unlink(self.directory / name) for _, name in runs[: max(1, len(runs) // 2)])

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
                header, start = _read_header(file)
                run = StoredRun(file, header, start, made + self.ttl_seconds)
            except (OSError, ValueError, KeyError, TypeError):
                # Not a run this version wrote (or damaged): as good as gone.
                raise RunNotFound(run_id) from None
            yield run

    def evict(self, keep: str | None = None) -> int:
        """Remove expired runs and the oldest beyond the budgets, listing the directory now;
        returns how many went. `keep` stays even if it alone is over the byte budget."""
        with self._listing_lock:
            return self._evict(self._list(), f"{keep}{SUFFIX}")

    def _evict_after_save(self, saved: tuple[int, str, int]) -> None:
        """Evict after a save, from the last listing and this store's saves since, unless
        that listing is RESCAN_SECONDS old."""
        with self._listing_lock:
            listing = self._listing
            if listing is None or time.monotonic() - self._listed_at > RESCAN_SECONDS:
                self._evict(self._list(), saved[1])
                return
            # The listing is within the budgets: the new run may push out the oldest only, so
            # this costs what it evicts, not what the store holds.
            listing.appendleft(saved)
            self._listed_bytes += saved[2]
            oldest_allowed = time.time() - self.ttl_seconds
            while len(listing) > 1 and (
                len(listing) > self.max_runs
                or self._listed_bytes > self.max_bytes
                or listing[-1][0] / 1e9 < oldest_allowed
            ):
                _, name, size = listing.pop()
                self._listed_bytes -= size
                _unlink(self.directory / name)

    def _list(self) -> list[tuple[int, str, int]]:
        """The runs on disk, newest first (stale temporary files are removed on the way)."""
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
        self._listed_at = time.monotonic()
        return runs

    def _evict(self, runs: list[tuple[int, str, int]], keep: str) -> int:
        """Unlink the runs (newest first) beyond the budgets; remember the rest."""
        now = time.time()
        kept, kept_bytes, removed = [], 0, 0
        full = False
        for run in runs:
            mtime_ns, name, size = run
            fits = (
                not full
                and now - mtime_ns / 1e9 <= self.ttl_seconds
                and len(kept) < self.max_runs
                and kept_bytes + size <= self.max_bytes
            )
            if fits or name == keep:
                kept.append(run)
                kept_bytes += size
                continue
            full = True  # strictly oldest-first: nothing older than an evicted run stays
            removed += _unlink(self.directory / name)
        self._listing, self._listed_bytes = deque(kept), kept_bytes
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


async def get_run_store(request: Request) -> RunStore:
    return request.app.state.run_store


RunStoreDep = Annotated[RunStore, Depends(get_run_store)]
