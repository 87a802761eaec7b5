"""How many forward runs the server takes on at once, and where their work runs.

Admission never waits: a request finding every place taken is answered 503 at once with
Retry-After, so memory stays bounded (each admitted run holds its upload and volumes) and a
crowd cannot queue without limit. The CPU work of admitted runs (decoding, each layer,
encoding, saving) runs off the event loop on a few threads, one per core.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, HTTPException, Request

T = TypeVar("T")
BUSY = "The server is busy with other images right now; try again in a second."


class ForwardGate:
    def __init__(self, places: int, threads: int | None = None):
        self.places = places
        self.active = 0
        # Made inside the running event loop (the lifespan), as anyio requires.
        self.limiter = anyio.CapacityLimiter(threads or os.cpu_count() or 1)

    def enter(self) -> None:
        """Take a place, or raise HTTPException 503 without waiting."""
        if self.active >= self.places:
            raise HTTPException(503, BUSY, headers={"Retry-After": "1"})
        self.active += 1

    def leave(self) -> None:
        self.active -= 1

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """function(*args) on a worker thread, at most one per core at a time."""
        return await anyio.to_thread.run_sync(function, *args, limiter=self.limiter)


def get_forward_gate(request: Request) -> ForwardGate:
    return request.app.state.forward_gate


ForwardGateDep = Annotated[ForwardGate, Depends(get_forward_gate)]
