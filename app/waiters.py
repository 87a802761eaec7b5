"""Tasks waiting their turn for one of a pool's members (a process, a worker), served in the
order they came; app/decode_pool.py's (the compute pool's children take batches instead).

    member = await waiters.wait(give_back=pool.release)   # when none is free
    if (waiter := waiters.next()) is not None:             # when one comes free
        waiter.set_result(member)

A waiter cancelled just as a member was handed to it gives the member back, so none is lost.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Waiters(Generic[T]):
    def __init__(self) -> None:
        self._queue: deque[asyncio.Future[T]] = deque()

    async def wait(self, give_back: Callable[[T], None]) -> T:
        """The member handed to this task, once one is."""
        waiter = asyncio.get_running_loop().create_future()
        self._queue.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed one as it was cancelled
                give_back(waiter.result())
            raise

    def next(self) -> asyncio.Future[T] | None:
        """The longest-waiting task's future, taken from the queue, or None if nobody
        waits (a task cancelled while it waited is skipped)."""
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.done():
                return waiter
        return None
