"""Data parallelism across the CPU's cores, on threads.

NumPy releases the GIL inside its array operations, so two threads that each push half a
batch through the network keep both cores busy, including the elementwise work (im2col
copies, ReLU, pooling) that a multi-threaded BLAS leaves on one core. Each thread then
uses a single-threaded BLAS, so the threads do not fight over the cores.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
from threadpoolctl import threadpool_limits

from model.network import Network

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

    def loss_and_scores(
        self, net: Network, x: np.ndarray, labels: np.ndarray
    ) -> tuple[float, dict[str, np.ndarray], np.ndarray]:
        """net.loss_and_scores on the whole batch, computed as one shard per thread.

        The shards' mean losses and gradients are weighted by shard size, so the result
        equals net.loss_and_scores(x, labels) up to float rounding.
        """
        bounds = np.linspace(0, len(x), self.workers + 1).astype(int)
        pieces = [(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
        results = self.map(
            lambda ab: net.loss_and_scores(x[ab[0] : ab[1]], labels[ab[0] : ab[1]]), pieces
        )
        weights = [(b - a) / len(x) for a, b in pieces]
        loss = sum(w * shard_loss for w, (shard_loss, _, _) in zip(weights, results, strict=True))
        grads = {
            name: sum(w * g[name] for w, (_, g, _) in zip(weights, results, strict=True))
            for name in results[0][1]
        }
        return float(loss), grads, np.concatenate([scores for _, _, scores in results])

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()

    def __enter__(self) -> ShardRunner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
