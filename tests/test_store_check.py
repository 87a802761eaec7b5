"""The run store is checked at start and by /healthz (app/store_check.py); a full disk
evicts old runs so the store recovers by itself (RunStore.save, make_room)."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from app import runs as runs_module
from app import store_check
from app.main import create_app
from app.runs import RunStore
from app.settings import Settings

NOBODY = 65534


def store(directory: Path) -> RunStore:
    return RunStore(directory, max_runs=64, max_bytes=1 << 30, ttl_seconds=3600)


def save(s: RunStore, count: int) -> list[str]:
    ids, now = [], time.time_ns()
    for i in range(count):
        run_id = f"{i:032x}"
        s.save(run_id, {"layers": []}, np.zeros((2, 2, 3), np.uint8), [])
        made = now - (count - i) * 10**9  # oldest first, all within the time to live
        os.utime(s.path(run_id), ns=(made, made))
        ids.append(run_id)
    return ids


def test_a_good_store_is_made_0700_and_passes(tmp_path: Path) -> None:
    s = store(tmp_path / "a" / "runs")
    assert store_check.prepare(s) is None
    assert (s.directory.stat().st_mode & 0o777) == 0o700


def test_each_unusable_store_is_named(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    assert "not a directory" in store_check.problem(tmp_path / "file")
    assert "does not exist" in store_check.problem(tmp_path / "missing")
    assert "cannot be read" in store_check.problem(tmp_path / "file" / "below")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    assert "writable by every user" in store_check.problem(shared)
    if os.geteuid() == 0:  # only root can give a folder away
        theirs = tmp_path / "theirs"
        theirs.mkdir(mode=0o700)
        os.chown(theirs, NOBODY, NOBODY)
        assert "belongs to another user" in store_check.problem(theirs)
    else:
        readonly = tmp_path / "readonly"
        readonly.mkdir(mode=0o500)
        assert "not writable" in store_check.problem(readonly)


def test_a_full_disk_evicts_the_oldest_half_and_the_save_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = store(tmp_path / "runs")
    ids = save(s, 6)
    real_write = runs_module._write_run
    calls = []

    def full_once(file, meta, arrays):
        calls.append(1)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(file, meta, arrays)

    monkeypatch.setattr(runs_module, "_write_run", full_once)
    s.save("f" * 32, {"layers": []}, np.zeros((2, 2, 3), np.uint8), [])
    left = sorted(p.stem for p in s.directory.glob("*.run"))
    assert left == sorted([*ids[3:], "f" * 32])  # the three oldest went
    assert not list(s.directory.glob(".partial-*"))


def test_a_full_disk_with_nothing_to_evict_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = store(tmp_path / "runs")

    def full(file, meta, arrays):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runs_module, "_write_run", full)
    with pytest.raises(OSError):
        s.save("f" * 32, {"layers": []}, np.zeros((2, 2, 3), np.uint8), [])


def test_check_evicts_before_calling_the_disk_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = store(tmp_path / "runs")
    save(s, 4)
    free = iter([0, store_check.MIN_FREE_BYTES])  # full, then room after eviction
    monkeypatch.setattr(store_check, "_free", lambda directory: next(free))
    assert store_check.check(s) is None
    assert len(list(s.directory.glob("*.run"))) == 2


async def test_healthz_and_uploads_answer_503_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    app = create_app(Settings(runs_dir=tmp_path / "file", models=("cifar10",)))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            health = await client.get("/healthz")
            assert health.status_code == 503
            assert health.json() == {
                "detail": "The server cannot keep runs: its run store is not a directory."
            }
            assert health.headers["retry-after"] == "30"
            files = {"image": ("a.png", b"\x89PNG", "image/png")}
            upload = await client.post("/api/models/cifar10/forward", files=files)
            assert upload.status_code == 503
            assert "cannot keep runs right now" in upload.json()["detail"]
            assert str(tmp_path) not in upload.text + health.text
