"""Runs kept in Redis: the same methods as app/runs.py's RunStore, for several machines.

    store = RedisRunStore.connect("redis://host:6379/0", max_runs=64, max_bytes=256 * MB,
                                  ttl_seconds=3600)

A run is one value, `convscope:run:<id>`, in the very format RunStore writes to a file
(app/runs.py: a JSON header, then the arrays), set with an expiry of the time to live, so
Redis forgets it on its own. `convscope:runs` (a sorted set: id -> when it was made) and
`convscope:run-sizes` (a hash: id -> bytes) let any worker evict, after each save, the
oldest runs beyond the count and byte budgets, as RunStore does on disk. Two workers
evicting at once both delete the same keys, which is harmless. A reader gets the whole
value in one GET and reads its arrays from memory.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from app.runs import RUN_ID, RunNotFound, StoredRun, _read_header, _write_run

PREFIX = "convscope:"
INDEX = PREFIX + "runs"
SIZES = PREFIX + "run-sizes"


def _key(run_id: str) -> str:
    return f"{PREFIX}run:{run_id}"


class RedisRunStore:
    def __init__(self, client: Any, max_runs: int, max_bytes: int, ttl_seconds: float):
        self.client = client
        self.max_runs = max_runs
        self.max_bytes = max_bytes
        self.ttl_seconds = ttl_seconds

    @classmethod
    def connect(cls, url: str, **budgets: Any) -> RedisRunStore:
        import redis

        pool = redis.BlockingConnectionPool.from_url(
            url, max_connections=32, timeout=20, socket_connect_timeout=5
        )
        client = redis.Redis(connection_pool=pool)
        client.ping()
        return cls(client, **budgets)

    def close(self) -> None:
        self.client.close()

    def save(
        self,
        run_id: str,
        meta: dict[str, Any] | bytes,
        pixels: np.ndarray,
        volumes: list[np.ndarray] | tuple = (),
    ) -> None:
        """Store one run (one SET: readers see all of it or nothing), then evict."""
        if not RUN_ID.fullmatch(run_id):
            raise RunNotFound(run_id)
        arrays = {"input": pixels, **{f"layer{i}": volume for i, volume in enumerate(volumes)}}
        buffer = io.BytesIO()
        _write_run(buffer, meta, arrays)
        data = buffer.getvalue()
        pipe = self.client.pipeline(transaction=True)
        pipe.set(_key(run_id), data, ex=max(1, int(self.ttl_seconds)))
        pipe.zadd(INDEX, {run_id: time.time()})
        pipe.hset(SIZES, run_id, len(data))
        pipe.execute()
        self.evict(keep=run_id)

    @contextmanager
    def open(self, run_id: str) -> Iterator[StoredRun]:
        """The run; RunNotFound if it is gone or expired."""
        if not RUN_ID.fullmatch(run_id):
            raise RunNotFound(run_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.get(_key(run_id))
        pipe.pttl(_key(run_id))
        data, pttl = pipe.execute()
        if data is None:
            raise RunNotFound(run_id)
        file = io.BytesIO(data)
        try:
            header, start = _read_header(file)
        except (ValueError, KeyError, TypeError):
            raise RunNotFound(run_id) from None
        yield StoredRun(file, header, start, time.time() + max(pttl, 0) / 1000)

    def evict(self, keep: str | None = None) -> int:
        """Remove expired runs and the oldest beyond the budgets; returns how many went."""
        now = time.time()
        runs = self.client.zrevrange(INDEX, 0, -1, withscores=True)  # newest first
        sizes = self.client.hmget(SIZES, [run_id for run_id, _ in runs]) if runs else []
        kept = kept_bytes = 0
        full = False
        gone = []
        for (run_id, made), size in zip(runs, sizes, strict=True):
            name, size = run_id.decode(), int(size or 0)
            fits = (
                not full
                and now - made <= self.ttl_seconds
                and kept < self.max_runs
                and kept_bytes + size <= self.max_bytes
            )
            if fits or name == keep:
                kept += 1
                kept_bytes += size
                continue
            full = True
            gone.append(name)
        if gone:
            pipe = self.client.pipeline(transaction=False)
            pipe.delete(*(_key(name) for name in gone))
            pipe.zrem(INDEX, *gone)
            pipe.hdel(SIZES, *gone)
            pipe.execute()
        return len(gone)

    def usage(self) -> tuple[int, int]:
        """(runs, bytes) in Redis now."""
        ids = [run_id for run_id in self.client.zrange(INDEX, 0, -1)]
        if not ids:
            return 0, 0
        live = [bool(n) for n in self._exists_each(ids)]
        sizes = self.client.hmget(SIZES, ids)
        return sum(live), sum(int(s or 0) for s, alive in zip(sizes, live, strict=True) if alive)

    def _exists_each(self, ids: list[bytes]) -> list[int]:
        pipe = self.client.pipeline(transaction=False)
        for run_id in ids:
            pipe.exists(_key(run_id.decode()))
        return pipe.execute()
