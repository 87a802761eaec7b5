"""The on-disk run store: round trip, atomic writes, eviction by count, bytes and age,
and several processes saving, evicting and reading at once."""

import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pytest

from app.runs import MAGIC, SUFFIX, TEMP_PREFIX, RunNotFound, RunStore, new_run_id

MB = 1 << 20


def volumes(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(8, 8, 4)).astype(np.float32), rng.random((1, 1, 10), np.float32)]


def meta(run_id: str) -> dict:
    return {"id": run_id, "layers": [{"name": "conv1"}, {"name": "fc1"}]}


def save(store: RunStore, seed: int = 0) -> str:
    run_id = new_run_id()
    pixels = np.full((4, 4, 3), seed % 256, np.uint8)
    store.save(run_id, meta(run_id), pixels, volumes(seed))
    return run_id


def store_in(path: Path, **budgets) -> RunStore:
    options = {"max_runs": 100, "max_bytes": 100 * MB, "ttl_seconds": 3600, **budgets}
    return RunStore(path, **options)


def age(store: RunStore, run_id: str, seconds: float) -> None:
    """Make a run look `seconds` older."""
    path = store.path(run_id)
    then = path.stat().st_mtime - seconds
    os.utime(path, (then, then))


def test_round_trip_is_exact(tmp_path: Path) -> None:
    store = store_in(tmp_path / "runs")
    run_id = save(store, seed=3)
    with store.open(run_id) as run:
        assert run.meta == meta(run_id)
        assert run.layer_count == 2
        assert (run.pixels() == 3).all() and run.pixels().dtype == np.uint8
        for index, expected in enumerate(volumes(3)):
            assert run.layer(index).dtype == np.float32
            assert np.array_equal(run.layer(index), expected)
        with pytest.raises(IndexError):
            run.layer(2)
        assert run.expires_at == pytest.approx(time.time() + 3600, abs=60)


def test_no_temporary_file_is_left_behind(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    save(store)
    assert [p.suffix for p in tmp_path.iterdir()] == [SUFFIX]


@pytest.mark.parametrize("run_id", ["", "../../etc/passwd", "A" * 32, "0" * 31, "0" * 33])
def test_malformed_ids_are_not_found(tmp_path: Path, run_id: str) -> None:
    with pytest.raises(RunNotFound):
        with store_in(tmp_path).open(run_id):
            pass


def test_unknown_and_damaged_runs_are_not_found(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    with pytest.raises(RunNotFound):
        with store.open(new_run_id()):
            pass
    for content in (
        b"not a run file",
        MAGIC + b"\xff" * 8 + b"{",
        MAGIC + b"\x02" + b"\0" * 7 + b"{}",
    ):
        damaged = new_run_id()
        store.path(damaged).write_bytes(content)
        with pytest.raises(RunNotFound):
            with store.open(damaged):
                pass


def test_evicts_the_oldest_beyond_the_count(tmp_path: Path) -> None:
    runs = [save(store_in(tmp_path), seed) for seed in range(5)]
    store = store_in(tmp_path, max_runs=3)
    for offset, run_id in enumerate(runs):  # distinct ages, oldest first
        age(store, run_id, 100 - offset)
    assert store.evict() == 2
    assert store.usage()[0] == 3
    for run_id in runs[:2]:
        with pytest.raises(RunNotFound):
            with store.open(run_id):
                pass
    for run_id in runs[2:]:
        with store.open(run_id):
            pass


def test_evicts_beyond_the_byte_budget_but_keeps_the_newest(tmp_path: Path) -> None:
    size = store_in(tmp_path / "probe").path(save(store_in(tmp_path / "probe"))).stat().st_size
    store = store_in(tmp_path / "runs", max_bytes=int(size * 2.5))
    for seed in range(4):
        save(store, seed)
    count, used = store.usage()
    assert count == 2 and used <= size * 2.5
    # A budget smaller than one run still keeps the run just written.
    tiny = store_in(tmp_path / "tiny", max_bytes=1)
    run_id = save(tiny)
    with tiny.open(run_id):
        pass
    assert tiny.usage()[0] == 1


def test_expired_runs_are_not_found_and_are_evicted(tmp_path: Path) -> None:
    store = store_in(tmp_path, ttl_seconds=60)
    old, new = save(store), save(store)
    age(store, old, 61)
    with pytest.raises(RunNotFound):
        with store.open(old):
            pass
    age(store, new, 61)
    store.evict()
    assert store.usage() == (0, 0)


def test_stale_temporary_files_are_cleaned_and_fresh_ones_kept(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    stale, fresh = tmp_path / f"{TEMP_PREFIX}stale", tmp_path / f"{TEMP_PREFIX}fresh"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    store.evict()
    assert not stale.exists() and fresh.exists()
    assert store.usage() == (0, 0)  # temporary files are never runs


def test_an_open_run_stays_readable_while_it_is_evicted(tmp_path: Path) -> None:
    store = store_in(tmp_path, max_runs=1)
    first = save(store, 1)
    with store.open(first) as run:
        save(store, 2)  # evicts `first`
        assert not store.path(first).exists()
        assert np.array_equal(run.layer(0), volumes(1)[0])


def test_the_directory_is_made_when_missing(tmp_path: Path) -> None:
    store = store_in(tmp_path / "a" / "b")
    assert store.usage() == (0, 0) and store.evict() == 0
    with store.open(save(store)):
        pass


def _writer(directory: str, seed: int, count: int) -> int:
    store = RunStore(Path(directory), max_runs=5, max_bytes=100 * MB, ttl_seconds=3600)
    for i in range(count):
        save(store, seed * 1000 + i)
    return count


def _reader(directory: str, seconds: float) -> tuple[int, int]:
    """Open whatever runs exist, again and again: each is whole, or not found."""
    store = RunStore(Path(directory), max_runs=5, max_bytes=100 * MB, ttl_seconds=3600)
    found = missing = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for name in os.listdir(directory):
            if not name.endswith(SUFFIX) or name.startswith(TEMP_PREFIX):
                continue
            try:
                with store.open(name.removesuffix(SUFFIX)) as run:
                    assert run.layer(0).shape == (8, 8, 4)
                    assert run.meta["id"] == name.removesuffix(SUFFIX)
                found += 1
            except RunNotFound:
                missing += 1
    return found, missing


@pytest.mark.slow  # four processes
def test_several_processes_save_evict_and_read_at_once(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    with context.Pool(4) as pool:
        reader = pool.apply_async(_reader, (str(tmp_path), 2.0))
        writers = [pool.apply_async(_writer, (str(tmp_path), seed, 40)) for seed in range(3)]
        assert [w.get(timeout=60) for w in writers] == [40, 40, 40]
        found, _ = reader.get(timeout=60)
    assert found > 0
    store = RunStore(tmp_path, max_runs=5, max_bytes=100 * MB, ttl_seconds=3600)
    store.evict()
    assert store.usage()[0] == 5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TEMP_PREFIX)]
