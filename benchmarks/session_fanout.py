"""Class session fan-out: hold N followers on one session's event stream, PUT a state, and
time how long until the last follower has it. Loopback, one machine; prints a Markdown row
per follower count.

    python benchmarks/session_fanout.py                       # 50, 200, 1000 followers, 1 worker
    python benchmarks/session_fanout.py --workers 2 --redis redis://127.0.0.1:6379/0

Followers are raw asyncio connections (an HTTP/1.1 GET, then reading lines), so that the
client side costs little beside the server. Every wait has a time limit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from local_server import free_port, start_server  # noqa: E402

PUTS = 7
LIMIT_SECONDS = 120


async def follower(port: int, code: str, seen: dict[int, float], ready: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    writer.write(
        f"GET /api/sessions/{code}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    try:
        while line := await reader.readline():
            if line.startswith(b"data: "):
                number = json.loads(line[6:])["n"]
                if number < 0:
                    ready.set()
                else:
                    seen[number] = time.perf_counter()
    finally:
        writer.close()


async def measure(port: int, count: int) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        made = (await client.post("/api/sessions")).json()
        code, auth = made["code"], {"Authorization": f"Bearer {made['presenter_token']}"}
        url = f"/api/sessions/{code}/state"
        await client.put(url, json={"n": -1}, headers=auth)
        seen = [{} for _ in range(count)]
        readies = [asyncio.Event() for _ in range(count)]
        started = time.perf_counter()
        tasks = [
            asyncio.create_task(follower(port, code, s, r))
            for s, r in zip(seen, readies, strict=True)
        ]
        joined = asyncio.gather(*(r.wait() for r in readies))
        try:
            await asyncio.wait_for(joined, LIMIT_SECONDS)
        except TimeoutError:
            failed = [repr(t.exception()) for t in tasks if t.done() and t.exception()]
            raise SystemExit(
                f"{sum(r.is_set() for r in readies)} of {count} followers got the first "
                f"event in {LIMIT_SECONDS} s; {len(failed)} failed, e.g. {failed[:3]}"
            ) from None
        connect_s = time.perf_counter() - started
        held = (await client.get(f"/api/sessions/{code}")).json()["followers"]
        delays = []
        for n in range(PUTS):
            await asyncio.sleep(0.3)
            sent = time.perf_counter()
            await client.put(url, json={"n": n, "layer": n % 8}, headers=auth)
            deadline = sent + LIMIT_SECONDS
            while sum(n in s for s in seen) < count and time.perf_counter() < deadline:
                await asyncio.sleep(0.002)
            got = [s[n] for s in seen if n in s]
            delays.append((max(got) - sent) * 1000 if len(got) == count else float("inf"))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.post(f"/api/sessions/{code}/end", headers=auth)
    return {
        "followers": count,
        "held": held,
        "connect_s": connect_s,
        "median_ms": statistics.median(delays),
        "max_ms": max(delays),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--followers", default="50,200,1000")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--redis", default=None, help="CONVSCOPE_REDIS_URL for the server")
    args = parser.parse_args()
    counts = [int(c) for c in args.followers.split(",")]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * max(counts) + 256)), hard))
    env = {"CONVSCOPE_MODELS": "mnist", "CONVSCOPE_MAX_FOLLOWERS": str(max(counts) + 10)}
    if args.redis:
        env["CONVSCOPE_REDIS_URL"] = args.redis
    port = free_port()
    server = start_server(port, workers=args.workers, env=env)
    try:
        backend = "Redis" if args.redis else "in-process"
        print(
            "| followers | workers | sessions | held | connect all (s) "
            f"| PUT -> last follower, median of {PUTS} (ms) | max (ms) |"
        )
        print("| ---: | ---: | --- | ---: | ---: | ---: | ---: |")
        for count in counts:
            row = asyncio.run(measure(port, count))
            print(
                f"| {count} | {args.workers} | {backend} | {row['held']} | {row['connect_s']:.2f} "
                f"| {row['median_ms']:.1f} | {row['max_ms']:.1f} |",
                flush=True,
            )
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
