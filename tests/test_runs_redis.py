"""app/runs_redis.py: the same contract as RunStore (tests/test_runs_store.py), in Redis."""

from __future__ import annotations

import time

import numpy as np
import pytest

from app.runs import RunNotFound, new_run_id
from app.runs_redis import RedisRunStore


def make(redis_url: str, **budgets) -> RedisRunStore:
    options = {"max_runs": 3, "max_bytes": 1 << 30, "ttl_seconds": 3600, **budgets}
    return RedisRunStore.connect(redis_url, **options)


def a_run(seed: int) -> tuple[dict, np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    volumes = [rng.standard_normal((4, 5, 2)).astype(np.float32) for _ in range(3)]
    meta = {"id": seed, "layers": [{"index": i} for i in range(3)]}
    return meta, pixels, volumes


def test_a_saved_run_reads_back_exactly(redis_url: str) -> None:
    store = make(redis_url)
    run_id = new_run_id()
    meta, pixels, volumes = a_run(1)
    store.save(run_id, meta, pixels, volumes)
    with store.open(run_id) as run:
        assert run.meta == meta and run.layer_count == 3
        assert np.array_equal(run.pixels(), pixels)
        for i, volume in enumerate(volumes):
            assert np.array_equal(run.layer(i), volume) and run.layer(i).dtype == np.float32
        with pytest.raises(IndexError):
            run.layer(3)
        assert time.time() + 3590 < run.expires_at <= time.time() + 3600
    assert store.usage()[0] == 1


def test_unknown_and_malformed_ids_are_not_found(redis_url: str) -> None:
    store = make(redis_url)
    for run_id in [new_run_id(), "../etc", "A" * 32]:
        with pytest.raises(RunNotFound), store.open(run_id):
            pass


def test_the_oldest_runs_go_beyond_the_count_and_bytes(redis_url: str) -> None:
    store = make(redis_url, max_runs=3)
    ids = [new_run_id() for _ in range(5)]
    for seed, run_id in enumerate(ids):
        store.save(run_id, *a_run(seed))
    for run_id in ids[:2]:
        with pytest.raises(RunNotFound), store.open(run_id):
            pass
    for run_id in ids[2:]:
        with store.open(run_id):
            pass
    count, size = store.usage()
    assert count == 3
    small = make(redis_url, max_runs=10, max_bytes=size // 3 + 1)
    small.save(new_run_id(), *a_run(9))
    assert small.usage()[0] == 1  # the newest stays even alone


def test_runs_expire(redis_url: str) -> None:
    store = make(redis_url, ttl_seconds=1)
    run_id = new_run_id()
    store.save(run_id, *a_run(0))
    time.sleep(1.2)
    with pytest.raises(RunNotFound), store.open(run_id):
        pass
    assert store.evict() == 1
