"""The decoding workers (app/decode_pool.py): the same pixels as decoding in-process, a
deadline that kills and replaces a worker, a memory cap answered 413, memory handed back
by retiring a worker after a big decode. Starts worker processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from PIL import Image

from app import imaging
from app.decode_pool import MB, RECYCLE_BYTES, DecodePool
from benchmarks import hostile_corpus as corpus

pytestmark = pytest.mark.slow
CIFAR = (32, 32, 3)


@pytest.fixture
async def pool() -> AsyncIterator[DecodePool]:
    pool = DecodePool(workers=1, seconds=10, memory_bytes=256 * MB)
    yield pool
    pool.close()


async def prepare(pool: DecodePool, data: bytes, digits: bool = False):
    shape = (28, 28, 1) if digits else CIFAR
    return await pool.prepare(
        data, shape, digits=digits, max_pixels=imaging.MAX_PIXELS, max_aspect=imaging.MAX_ASPECT
    )


def big_png(side: int) -> bytes:
    """A solid side x side PNG: a few KB that decode to side^2 x 3 bytes."""
    return corpus.encode(Image.new("RGB", (side, side), (10, 200, 30)), "PNG")


async def test_pixels_equal_decoding_in_process(pool: DecodePool) -> None:
    for data, digits in [
        (corpus.encode(corpus.picture(), "PNG"), False),
        (corpus.encode(corpus.picture(300, 200), "JPEG"), False),
        (corpus.encode(corpus.picture(90, 90), "PNG"), True),
    ]:
        expected = imaging.prepare(data, (28, 28, 1) if digits else CIFAR, digits=digits)
        assert (await prepare(pool, data, digits) == expected).all()


async def test_image_errors_come_back_as_they_are(pool: DecodePool) -> None:
    with pytest.raises(imaging.ImageError) as refused:
        await prepare(pool, corpus.HTML)
    assert refused.value.status == 415
    assert len(pool.pids()) == 1  # an ordinary refusal keeps the worker


async def test_past_the_deadline_the_worker_is_killed_and_replaced() -> None:
    pool = DecodePool(workers=1, seconds=30, memory_bytes=512 * MB)
    big = big_png(4000)
    try:
        await prepare(pool, corpus.encode(corpus.picture(), "PNG"))  # started
        first = pool.pids()
        pool.seconds = 0.05
        started = time.monotonic()
        with pytest.raises(imaging.ImageError) as stopped:
            await prepare(pool, big)  # about 0.3 s of decoding, or more under load
        assert time.monotonic() - started < 5
        assert stopped.value.status == 422 and "took more than 0.05 seconds" in stopped.value.detail
        assert pool.killed == 1 and pool.pids() == []
        pool.seconds = 30
        assert (await prepare(pool, corpus.encode(corpus.picture(), "PNG"))).shape == CIFAR
        assert pool.pids() != first
    finally:
        pool.close()


async def test_past_the_memory_cap_the_answer_is_413() -> None:
    pool = DecodePool(workers=1, seconds=30, memory_bytes=16 * MB)
    try:
        with pytest.raises(imaging.ImageError) as refused:
            await prepare(pool, big_png(4000))  # 48 MB of RGB
        assert refused.value.status == 413 and "16 MiB" in refused.value.detail
        assert (await prepare(pool, corpus.encode(corpus.picture(), "PNG"))).shape == CIFAR
    finally:
        pool.close()


def resident(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


async def test_memory_goes_back_after_a_big_decode(pool: DecodePool) -> None:
    """The worker's resident memory is back within RECYCLE_BYTES of where it was, or the
    worker retired (and a fresh one starts on the next upload)."""
    await prepare(pool, corpus.encode(corpus.picture(), "PNG"))
    (pid,) = pool.pids()
    before = resident(pid)
    assert (await prepare(pool, big_png(4000))).shape == CIFAR  # 48 MB of pixels decoded
    if pool.pids() == [pid]:
        assert resident(pid) - before < RECYCLE_BYTES
    await prepare(pool, corpus.encode(corpus.picture(), "PNG"))
    assert len(pool.pids()) == 1


async def test_a_closed_pool_answers_503() -> None:
    pool = DecodePool(workers=1, seconds=5, memory_bytes=64 * MB)
    pool.close()
    with pytest.raises(imaging.ImageError) as refused:
        await prepare(pool, corpus.encode(corpus.picture(), "PNG"))
    assert refused.value.status == 503


async def test_an_upload_given_up_midway_stops_its_worker_and_the_next_is_decoded(
    pool: DecodePool,
) -> None:
    await prepare(pool, corpus.encode(corpus.picture(), "PNG"))  # started
    first = pool.pids()
    decoding = asyncio.ensure_future(prepare(pool, big_png(4000)))
    await asyncio.sleep(0.05)
    decoding.cancel()
    with pytest.raises(asyncio.CancelledError):
        await decoding
    # Its answer would have been read as the next upload's: the worker is gone instead.
    assert pool.pids() != first
    assert (await prepare(pool, corpus.encode(corpus.picture(), "PNG"))).shape == CIFAR


async def test_uploads_wait_for_a_free_worker(pool: DecodePool) -> None:
    pictures = [corpus.encode(corpus.picture(40 + i, 30), "PNG") for i in range(5)]
    decoded = await asyncio.gather(*(prepare(pool, data) for data in pictures))
    assert [pixels.shape for pixels in decoded] == [CIFAR] * 5
    assert len(pool.pids()) == 1
