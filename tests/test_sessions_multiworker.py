"""`convscope serve --workers 2` with Redis serves one class: followers connected to both
workers all receive one state PUT, a late joiner gets the current state first, and a run
made by one worker is read by the other."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import httpx
import pytest
import redis

from tests.images import photo, png

pytestmark = pytest.mark.slow
FOLLOWERS = 50


async def first_data(lines) -> dict:
    async for line in lines:
        if line.startswith("data: "):
            return json.loads(line[6:])
    raise AssertionError("the stream ended without an event")


def test_one_put_reaches_followers_on_both_workers(run_server, redis_url, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CONVSCOPE_REDIS_URL": redis_url,
        "CONVSCOPE_RUNS_DIR": str(tmp_path / "unused-runs"),
        "CONVSCOPE_MODELS": "mnist",
        "CONVSCOPE_WORKER_PID_HEADER": "true",  # which worker answered
    }
    command = [sys.executable, "-m", "app", "serve", "--workers", "2"]
    with run_server(command, env=env) as base_url:
        asyncio.run(follow_across_workers(base_url))
        run_made_by_one_worker_is_read_by_the_other(base_url, redis_url)
    assert not (tmp_path / "unused-runs").exists()


async def follow_across_workers(base_url: str) -> None:
    limits = httpx.Limits(max_connections=FOLLOWERS + 20)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
        made = (await client.post("/api/sessions")).json()
        code, token = made["code"], made["presenter_token"]
        auth = {"Authorization": f"Bearer {token}"}
        await client.put(f"/api/sessions/{code}/state", json={"layer": 1}, headers=auth)

        async def follower(ready: asyncio.Event, results: list) -> None:
            async with client.stream("GET", f"/api/sessions/{code}/events") as response:
                lines = response.aiter_lines()
                first = await first_data(lines)
                results.append((response.headers["x-worker-pid"], first))
                ready.set()
                results.append(("next", await first_data(lines)))

        results: list = []
        readies = [asyncio.Event() for _ in range(FOLLOWERS)]
        tasks = [asyncio.create_task(follower(r, results)) for r in readies]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
        workers = {pid for pid, _ in results}
        assert len(workers) == 2, f"all {FOLLOWERS} followers landed on {workers}"
        assert all(first == {"layer": 1} for _, first in results)
        info = (await client.get(f"/api/sessions/{code}")).json()
        assert info["followers"] == FOLLOWERS

        # One PUT, to whichever worker takes it: every follower on both receives it.
        state = {"model": "mnist", "layer": 4, "slice": 2}
        put = await client.put(
            f"/api/sessions/{code}/state", json=state, headers={**auth, "Connection": "close"}
        )
        assert put.status_code == 204
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        assert [s for kind, s in results if kind == "next"] == [state] * FOLLOWERS

        # A late joiner, on a new connection: the current state first.
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as late:
            async with late.stream("GET", f"/api/sessions/{code}/events") as response:
                assert await first_data(response.aiter_lines()) == state


def run_made_by_one_worker_is_read_by_the_other(base_url: str, redis_url: str) -> None:
    files = {"image": ("a.png", png(photo()), "image/png")}
    lines = httpx.post(f"{base_url}/api/models/mnist/forward", files=files, timeout=30)
    run_id = json.loads(lines.text.splitlines()[0])["id"]
    assert redis.Redis.from_url(redis_url).exists(f"convscope:run:{run_id}")
    pids = set()
    for _ in range(30):
        answer = httpx.get(
            f"{base_url}/api/runs/{run_id}", headers={"Connection": "close"}, timeout=30
        )
        assert answer.status_code == 200
        pids.add(answer.headers["x-worker-pid"])
        if len(pids) == 2:
            break
    assert len(pids) == 2, f"only {pids} answered"
