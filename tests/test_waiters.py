"""app/waiters.py: first come, first served; a task cancelled while it waited is skipped,
and one cancelled just as a member was handed to it gives the member back."""

import asyncio

from app.waiters import Waiters


async def test_members_go_to_the_waiters_in_order_skipping_the_cancelled() -> None:
    waiters: Waiters[str] = Waiters()
    given_back: list[str] = []
    first = asyncio.ensure_future(waiters.wait(given_back.append))
    gone = asyncio.ensure_future(waiters.wait(given_back.append))
    last = asyncio.ensure_future(waiters.wait(given_back.append))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    for member in ("a", "b"):
        waiters.next().set_result(member)
    assert (await first, await last) == ("a", "b")
    assert waiters.next() is None and given_back == []


async def test_a_waiter_cancelled_as_it_is_handed_a_member_gives_it_back() -> None:
    waiters: Waiters[str] = Waiters()
    given_back: list[str] = []
    task = asyncio.ensure_future(waiters.wait(given_back.append))
    await asyncio.sleep(0)
    waiters.next().set_result("a")
    task.cancel()  # before the task has run again to take "a"
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled() and given_back == ["a"]
