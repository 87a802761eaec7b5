"""Inference across the CPU's cores, on threads (evaluation's batches).

NumPy releases the GIL inside its array operations, so threads that each push a batch
through the network keep every core busy, including the elementwise work (im2col copies,
ReLU, pooling) that a multi-threaded BLAS leaves on one core. Each thread uses a
single-threaded BLAS, so the threads do not fight over the cores. The training step runs
in worker processes instead (model/training/workers.py), where the many small NumPy calls of
backward do not queue for the GIL.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from threadpoolctl import threadpool_limits

T = TypeVar("T")


def default_workers() -> int:
    return max(1, min(len(os.sched_getaffinity(0)), 8))


class ShardRunner:
    """Runs a function over shards of work on a fixed pool of threads."""

    def __init__(self, workers: int | None = None):
        self.workers = workers or default_workers()
        self._pool = ThreadPoolExecutor(self.workers) if self.workers > 1 else None

    def map(self, fn: Callable[..., T], *shards: Sequence) -> list[T]:
        if self._pool is None:
            return [fn(*args) for args in zip(*shards, strict=True)]
        with threadpool_limits(1, user_api="blas"):
            return list(self._pool.map(fn, *shards))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()

    def __enter__(self) -> ShardRunner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
