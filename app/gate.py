"""How many forward runs the server takes on at once, and where their work runs.

Admission never waits: a request finding every place taken is answered 503 at once with
Retry-After, so memory stays bounded (each admitted run holds its upload and volumes) and a
crowd cannot queue without limit. The CPU work of admitted runs (decoding, the layers,
encoding, saving) runs off the event loop on a small pool of threads, one per core.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request

T = TypeVar("T")
BUSY = "The server is busy with other images right now; try again in a second."
Emit = Callable[[bytes], None]


class _Stopped(Exception):
    """Raised inside a producer whose reader has gone away."""


_DONE = object()


class ForwardGate:
    def __init__(self, places: int, threads: int | None = None):
        self.places = places
        self.active = 0
        self.executor = ThreadPoolExecutor(threads or os.cpu_count() or 1, "forward")

    def enter(self) -> None:
        """Take a place, or raise HTTPException 503 without waiting."""
        if self.active >= self.places:
            raise HTTPException(503, BUSY, headers={"Retry-After": "1"})
        self.active += 1

    def leave(self) -> None:
        self.active -= 1

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """function(*args) on a compute thread."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    async def stream(self, produce: Callable[[Emit], None]) -> AsyncIterator[bytes]:
        """Run produce(emit) on a compute thread and yield each chunk it emits, as soon as it
        is emitted. The producer never waits for the reader (one thread hop per run, not
        per chunk); if the reader stops, the producer's next emit stops it too."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        stopped = threading.Event()

        def put(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the event loop is closed: nobody is reading
                stopped.set()

        def emit(chunk: bytes) -> None:
            if stopped.is_set():
                raise _Stopped
            put(chunk)

        def work() -> None:
            try:
                produce(emit)
            except _Stopped:
                pass
            except Exception as error:
                put(error)
            finally:
                put(_DONE)

        loop.run_in_executor(self.executor, work)
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            stopped.set()

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


async def get_forward_gate(request: Request) -> ForwardGate:
    return request.app.state.forward_gate


ForwardGateDep = Annotated[ForwardGate, Depends(get_forward_gate)]
