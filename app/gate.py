"""How many forward runs the server takes on at once, and where their work runs.

Admission never waits: a request finding every place taken is answered 503 at once with
Retry-After, so memory stays bounded (each admitted run holds its upload and volumes) and a
crowd cannot queue without limit. The CPU work of admitted runs (decoding, the layers,
encoding, saving) runs off the event loop on a small pool of threads, one per core.

A place is a `Place`, released exactly once however the run ends: by the stream's own
`finally` when it ran, and by `GatedStreamingResponse` when the response ends (also when
the client went away before the first byte, so the stream was never started and its
`finally` never runs). The upload's body is read before a place is taken.

Pictures (layer, attribution and weight PNGs, the input, exact JSON) are drawn on threads
of their own, half as many as the compute threads (at least one): a picture never waits
in the forwards' queue nor a forward in theirs, so a flood of them (an upscale=16 mosaic
costs seconds of a core) leaves the forwards at least half the cores. At most
`picture_places` are drawn or waiting at once; past them, 503 with Retry-After at once,
instead of queueing memory without end.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request
from fastapi.responses import StreamingResponse
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

T = TypeVar("T")
BUSY = "The server is busy with other images right now; try again in a second."
BUSY_PICTURES = "The server is drawing many pictures right now; try again in a second."
Emit = Callable[[bytes], None]


class _Stopped(Exception):
    """Raised inside a producer whose reader has gone away."""


_DONE = object()


class Place:
    """One admitted run's place at the gate; `release` may be called any number of times."""

    def __init__(self, gate: ForwardGate):
        self._gate: ForwardGate | None = gate

    def release(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.active -= 1

    @property
    def held(self) -> bool:
        return self._gate is not None


class ForwardGate:
    def __init__(self, places: int, threads: int | None = None, picture_places: int = 4):
        self.places = places
        self.active = 0
        self.picture_places = picture_places
        self.pictures = 0
        self.threads = threads or os.cpu_count() or 1
        self.executor = ThreadPoolExecutor(self.threads, "forward")
        self.picture_threads = max(1, self.threads // 2)
        self.picture_executor = ThreadPoolExecutor(self.picture_threads, "picture")

    def admit(self) -> Place:
        """Take a place, or raise HTTPException 503 without waiting."""
        self.enter()
        return Place(self)

    def enter(self) -> None:
        """Take a place (prefer `admit`, whose Place releases once), or raise 503."""
        if self.active >= self.places:
            raise HTTPException(503, BUSY, headers={"Retry-After": "1"})
        self.active += 1

    def leave(self) -> None:
        self.active -= 1

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """function(*args) on a compute thread."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    async def picture(self, function: Callable[..., T], *args: Any) -> T:
        """function(*args) on a picture thread, as one of at most `picture_places`; past
        them, HTTPException 503 with Retry-After, at once."""
        if self.pictures >= self.picture_places:
            raise HTTPException(503, BUSY_PICTURES, headers={"Retry-After": "1"})
        self.pictures += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.picture_executor, function, *args)
        finally:
            self.pictures -= 1

    async def stream(self, produce: Callable[[Emit], None]) -> AsyncIterator[bytes]:
        """Run produce(emit) on a compute thread and yield each chunk it emits, as soon as it
        is emitted (chunks already waiting are joined into one). The producer never waits
        for the reader (one thread hop per run, not per chunk); if the reader stops, the
        producer's next emit stops it too."""
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
            while True:
                # Chunks emitted while the reader was away go out together, in one write:
                # none waits for a later one, and a busy loop writes less often.
                items = [await queue.get()]
                while not queue.empty():
                    items.append(queue.get_nowait())
                chunks = []
                for item in items:
                    if item is _DONE or isinstance(item, Exception):
                        break
                    chunks.append(item)
                if chunks:
                    yield chunks[0] if len(chunks) == 1 else b"".join(chunks)
                if len(chunks) < len(items):
                    if isinstance(items[len(chunks)], Exception):
                        raise items[len(chunks)]
                    return
        finally:
            stopped.set()

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.picture_executor.shutdown(wait=True, cancel_futures=True)


class GatedStreamingResponse(StreamingResponse):
    """A streamed response that releases its Place when it ends, however it ends.

    A client that goes away stops the stream, as with Starlette's StreamingResponse, but
    the disconnect is watched by one plain task instead of an anyio task group per
    response (0.4 ms of the event loop's CPU per run: BENCHMARKS.md, "The server path")."""

    def __init__(self, place: Place, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.place = place

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            spec = scope.get("asgi", {}).get("spec_version", "2.0")
            if tuple(map(int, spec.split("."))) >= (2, 4):
                # The server raises OSError from send once the client is gone.
                try:
                    await self.stream_response(send)
                except OSError:
                    raise ClientDisconnect() from None
            else:
                await _until_disconnect(self.stream_response(send), receive)
        finally:
            self.place.release()
            # A stream never started cannot be closed by its own means; this runs nothing
            # of it, but frees the frame at once rather than at garbage collection.
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except RuntimeError:  # still running in a task being torn down
                    pass


async def _until_disconnect(work: Awaitable[None], receive: Receive) -> None:
    """Await `work` in this task, cancelled if an http.disconnect arrives first."""
    task = asyncio.current_task()
    state = {"done": False, "gone": False}

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if not state["done"]:  # the work is still awaiting: stop it
            state["gone"] = True
            task.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        await work
    except asyncio.CancelledError:
        if not state["gone"] or task.uncancel() > 0:
            raise  # cancelled by someone else too
    finally:
        state["done"] = True
        watcher.cancel()


async def get_forward_gate(request: Request) -> ForwardGate:
    return request.app.state.forward_gate


ForwardGateDep = Annotated[ForwardGate, Depends(get_forward_gate)]
