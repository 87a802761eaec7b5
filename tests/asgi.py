"""Driving an app at the ASGI level in tests, without a client in between."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


def receive_once(body: bytes, finished: asyncio.Event) -> Callable[[], Awaitable[dict]]:
    """An ASGI `receive` that hands over the whole request body at once, then reports the
    client gone once `finished` is set (as a client that waits for the whole answer)."""
    unsent = [body]

    async def receive() -> dict:
        if unsent:
            return {"type": "http.request", "body": unsent.pop(), "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    return receive
