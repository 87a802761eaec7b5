"""Can the run store keep runs? Checked at start, by /healthz, and before each upload.

A server whose CONVSCOPE_RUNS_DIR is missing, read-only, someone else's or full would
otherwise take every upload, stream its layers and then fail at the end. So the folder is
made 0700 at start and checked: a directory, owned by the server's user, not writable by
every user (the default lies under the shared /tmp, so another user could have made it
first, to read or swap runs), writable, and with room for a run. A full disk is first
answered by evicting the oldest runs (RunStore.make_room); only if that frees nothing is
the store reported unusable, and it recovers by itself once space is back.

The sentences say what is wrong but not where: the path is for the server's log only.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from fastapi import HTTPException

from app.runs import RunStore

# About four cifar10 runs: less than this free is full for our purposes.
MIN_FREE_BYTES = 8 * 1024 * 1024
log = logging.getLogger(__name__)


def problem(directory: Path) -> str | None:
    """Why runs cannot be kept in `directory`, or None if they can."""
    try:
        link = os.lstat(directory)
        info = os.stat(directory)
    except FileNotFoundError:
        return "its run store does not exist"
    except OSError as error:
        return f"its run store cannot be read ({error.strerror or error})"
    if not stat.S_ISDIR(info.st_mode):
        return "its run store is not a directory"
    uid = os.geteuid()
    if link.st_uid != uid or info.st_uid != uid:
        return "its run store belongs to another user"
    if info.st_mode & stat.S_IWOTH:
        return "its run store is writable by every user"
    if not os.access(directory, os.W_OK | os.X_OK):
        return "its run store is not writable"
    if _free(directory) < MIN_FREE_BYTES:
        return "its run store's disk is full"
    return None


def _free(directory: Path) -> int:
    try:
        fs = os.statvfs(directory)
    except OSError:
        return MIN_FREE_BYTES
    return fs.f_bavail * fs.f_frsize


def prepare(store: RunStore) -> str | None:
    """Make the folder (0700) if it is missing, then check it; logs what is wrong."""
    if not isinstance(store, RunStore):
        return None  # a Redis store (app/runs_redis.py) has no folder: Redis was reached
    try:
        store.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError:
        pass  # problem() says why
    reason = check(store)
    if reason:
        log.error("runs cannot be kept in %s: %s", store.directory, reason)
    return reason


def check(store: RunStore) -> str | None:
    """problem(), after evicting old runs if the disk is full; None for a store with no
    folder (Redis)."""
    if not isinstance(store, RunStore):
        return None
    reason = problem(store.directory)
    if reason == "its run store's disk is full" and store.make_room():
        reason = problem(store.directory)
    return reason


def refuse_if_unusable(store: RunStore) -> None:
    """HTTPException 503 (before the upload is read) when runs cannot be kept."""
    if reason := check(store):
        raise HTTPException(
            503,
            f"The server cannot keep runs right now: {reason}. It has been logged; "
            "try again later.",
            headers={"Retry-After": "30"},
        )
