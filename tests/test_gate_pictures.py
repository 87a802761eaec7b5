"""app/gate.py: pictures are drawn on threads of their own, so however many are being drawn
or waiting, a forward's work starts at once on a free compute thread."""

from __future__ import annotations

import asyncio
import threading

import pytest
from fastapi import HTTPException

from app.gate import ForwardGate


async def test_a_flood_of_pictures_never_takes_the_forwards_threads() -> None:
    gate = ForwardGate(places=4, threads=2, picture_places=4)
    release = threading.Event()
    try:
        drawing = [asyncio.ensure_future(gate.picture(release.wait, 30)) for _ in range(4)]
        await asyncio.sleep(0.05)
        assert gate.pictures == 4
        with pytest.raises(HTTPException) as busy:
            await gate.picture(lambda: b"")
        assert busy.value.status_code == 503 and busy.value.headers == {"Retry-After": "1"}
        # Both compute threads are free for forwards while four pictures hold their places.
        both = [gate.run(threading.get_ident) for _ in range(2)]
        idents = await asyncio.wait_for(asyncio.gather(*both), timeout=5)
        assert all(isinstance(ident, int) for ident in idents)
        assert gate.picture_threads == 1
    finally:
        release.set()
        assert await asyncio.gather(*drawing) == [True] * 4
        gate.close()
    assert gate.pictures == 0


def test_pictures_get_half_the_threads_and_at_least_one() -> None:
    for threads, pictures in [(1, 1), (2, 1), (3, 1), (4, 2), (16, 8)]:
        gate = ForwardGate(places=1, threads=threads)
        assert gate.picture_threads == pictures
        gate.close()
