"""A classroom against one server: N clients uploading at once for T seconds, measured.

Starts `python -m app serve` on a free loopback port (runs in a temporary folder), or uses
a server already running (--url, loopback only: this script never sends to another
machine). Each client is a thread with one keep-alive connection that uploads, in a loop,
a sample image from static/samples/ (cifar10 photos and mnist digits, each to its model),
reads the NDJSON stream to its last line, and now and then fetches a layer of the run again
as a PNG. A 503 is waited out for its Retry-After, like a student pressing upload again.
--hostile mixes in the cases of benchmarks/hostile_corpus.py (those under 1 MB), each checked
against its documented statuses.

Before the measured run, 80 cifar10 runs per worker fill its memory of the newest runs'
volumes (CONVSCOPE_RUN_VOLUME_MEMORY_BYTES, a bounded cache), then a warm-up: each client
sends one upload (and one corpus case with
--hostile) at once, so that the first forwards are done and the decoding workers
(app/decode_pool.py, one per core, ~40 MB each, started on first use) are running; what
that costs is printed apart, as the warm-up's growth. Then it prints the requests, the
answers by status, p50/p99 latency, and the server's memory: the resident set (VmRSS) of
the server process and its children, sampled every second, its peak, the value at the 10th
second of the measured run and at the end and the growth between (from the measured run's
start when it is shorter than 20 s). --pictures N adds N clients that fetch, in a loop and
without If-None-Match, the upscale=16 pictures of the newest runs' layers (mostly not in
the server's cache) and of the cifar10 filters (the flood of issue 13), and prints their
answers beside the forwards' p50. --soak runs longer (600 s unless --seconds says
otherwise), fills the run cache first, and prints RSS over time.

    python benchmarks/load.py --clients 8 --seconds 60
    python benchmarks/load.py --clients 64 --seconds 60 --hostile
    python benchmarks/load.py --soak
    python benchmarks/load.py --clients 8 --seconds 20 --pictures 32
    python benchmarks/load.py --url http://127.0.0.1:8000 --pid 1234 --clients 16

Exits 1 if any answer was a 5xx other than 503, a 503 lacked Retry-After, a status was not
the documented one, the server logged a traceback, or memory grew by 50 MB or more from the
10th second (or the start) of the measured run to its end.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import socket
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from local_server import free_port, start_server

REPO = Path(__file__).resolve().parent.parent

SAMPLES = REPO / "static" / "samples"
MAX_CLIENTS = 256
MAX_SECONDS = 3600
GROWTH_LIMIT_MB = 50
# Uploads made (and their first layers fetched) before the warm-up to fill each worker's
# memory of the newest runs' volumes (CONVSCOPE_RUN_VOLUME_MEMORY_BYTES, 64 MB: about 65
# cifar10 runs), a bounded cache whose filling is not growth.
VOLUME_MEMORY_RUNS = 80
HOSTILE_SHARE = 0.25  # with --hostile, one upload in four is a corpus case
REFETCH_EVERY = 5  # one run in five is followed by a layer PNG fetched again
SCORES = b'{"type":"scores"'
WARM_UP_SECONDS = 120  # at most; the warm-up's uploads normally take a few seconds


@dataclass(frozen=True)
class Upload:
    name: str
    model: str
    body: bytes
    content_type: str
    expected: frozenset[int] = frozenset({200, 503})


def samples() -> list[Upload]:
    index = json.loads((SAMPLES / "index.json").read_text())
    uploads = []
    for sample in index["samples"]:
        path = SAMPLES / sample["file"]
        boundary = "convscope-load"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
                f'filename="{path.name}"\r\nContent-Type: image/{path.suffix[1:]}\r\n\r\n'
            ).encode()
            + path.read_bytes()
            + f"\r\n--{boundary}--\r\n".encode()
        )
        uploads.append(
            Upload(sample["id"], sample["model"], body, f"multipart/form-data; boundary={boundary}")
        )
    return uploads


def hostile() -> list[Upload]:
    import hostile_corpus

    uploads = []
    for case in hostile_corpus.small_cases():
        body, content_type = case.body()
        uploads.append(Upload(case.name, "cifar10", body, content_type, case.expected | {503}))
    return uploads


# --- the server and its memory ----------------------------------------------------------


def loopback_only(url: str) -> str:
    """The URL without a trailing slash; SystemExit unless every address it names is loopback."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise SystemExit(f"--url must be http://HOST:PORT on this machine, not {url!r}")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 80, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise SystemExit(f"cannot resolve {parts.hostname!r}: {error}") from None
    addresses = {info[4][0] for info in infos}
    if not addresses or not all(ipaddress.ip_address(a).is_loopback for a in addresses):
        raise SystemExit(
            f"refusing {parts.hostname!r} ({', '.join(sorted(addresses))}): "
            "load is only ever sent to this machine's loopback interface"
        )
    return url.rstrip("/")


def family(pid: int) -> list[int]:
    """pid and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def memory_kb(pid: int, field_name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class MemoryMonitor(threading.Thread):
    """Samples the server family's total VmRSS every `interval` seconds."""

    def __init__(self, pid: int, interval: float = 1.0):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, int]] = []  # (seconds since start, kB)
        self.hwm_kb = 0
        self.started_at = time.monotonic()
        self.stopping = threading.Event()

    def sample(self) -> int:
        pids = family(self.pid)
        rss = sum(memory_kb(pid, "VmRSS") for pid in pids)
        self.hwm_kb = max(self.hwm_kb, sum(memory_kb(pid, "VmHWM") for pid in pids))
        self.samples.append((time.monotonic() - self.started_at, rss))
        return rss

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self.stopping.set()
        self.join()
        self.sample()

    def at(self, seconds: float) -> int:
        """The first sample taken at or after `seconds` (the last one if none)."""
        return next((kb for t, kb in self.samples if t >= seconds), self.samples[-1][1])


# --- the clients ------------------------------------------------------------------------


@dataclass
class Results:
    statuses: Counter = field(default_factory=Counter)
    by_case: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    run_latencies: list[float] = field(default_factory=list)
    refetches: Counter = field(default_factory=Counter)
    problems: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def one_upload(client: httpx.Client, base: str, upload: Upload) -> tuple[int, float, str, dict]:
    """(status, seconds to the last byte, run id or "", headers)."""
    start = time.perf_counter()
    url = f"{base}/api/models/{upload.model}/forward"
    headers = {"content-type": upload.content_type}
    with client.stream("POST", url, content=upload.body, headers=headers) as response:
        tail = b""
        for chunk in response.iter_bytes():
            tail = (tail + chunk)[-4096:]
    elapsed = time.perf_counter() - start
    status = response.status_code
    if status == 200:
        last = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
        if not last.startswith(SCORES):
            status = -2  # the stream ended without its scores line
    elif not response.headers.get("content-type", "").startswith("application/json"):
        status = -3  # an error that is not the JSON sentence
    return status, elapsed, response.headers.get("x-run-id", ""), dict(response.headers)


def client_loop(
    base: str,
    uploads: list[Upload],
    bad: list[Upload],
    deadline: float,
    seed: int,
    results: Results,
    order: list[Upload] | None = None,
) -> None:
    """Uploads until `deadline`, chosen at random, or those in `order`, one after another."""
    rng = random.Random(seed)
    with httpx.Client(timeout=120) as client:
        while time.monotonic() < deadline and order != []:
            if order:
                upload = order.pop(0)
            else:
                upload = rng.choice(bad if bad and rng.random() < HOSTILE_SHARE else uploads)
            try:
                status, elapsed, run_id, headers = one_upload(client, base, upload)
            except httpx.HTTPError as error:
                status, elapsed, run_id, headers = -1, 0.0, "", {}
                with results.lock:
                    results.problems[f"transport: {type(error).__name__}"] += 1
                time.sleep(0.1)  # a server that is gone is not hammered
            retry = headers.get("retry-after")
            with results.lock:
                results.statuses[status] += 1
                results.by_case[(upload.name, status)] += 1
                if status > 0:
                    results.latencies.append(elapsed)
                if status == 200:
                    results.run_latencies.append(elapsed)
                    RECENT.append(run_id)
                if status not in upload.expected:
                    results.problems[f"{upload.name}: {status}"] += 1
                if status == 503 and not retry:
                    results.problems["503 without Retry-After"] += 1
            if status == 503:
                time.sleep(min(float(retry or 1), 5))
            elif status == 200 and rng.randrange(REFETCH_EVERY) == 0:
                layer = rng.randrange(8)
                try:
                    answer = client.get(f"{base}/api/runs/{run_id}/layers/{layer}.png")
                    code = answer.status_code
                except httpx.HTTPError:
                    code = -1
                with results.lock:
                    results.refetches[code] += 1
                    busy = code == 503 and answer.headers.get("retry-after")
                    if (code >= 500 and not busy) or code < 0:
                        results.problems[f"refetch: {code}"] += 1


PICTURE_UPSCALE = 16
RECENT_RUNS = 16
# The newest runs the upload clients made, which the picture clients look at.
RECENT: deque = deque(maxlen=RECENT_RUNS)
CIFAR10_CONVS = (0, 2, 5, 7, 10, 12)


def picture_url(base: str, rng: random.Random) -> str:
    """An upscale=16 picture: one of the first layers of one of the newest runs (so mostly
    not in the server's cache, as students each look at their own), or a cifar10 filter bank."""
    query = f"?upscale={PICTURE_UPSCALE}"
    if rng.random() < 0.25 or not RECENT:
        return f"{base}/api/models/cifar10/layers/{rng.choice(CIFAR10_CONVS)}/weights.png{query}"
    return f"{base}/api/runs/{rng.choice(RECENT)}/layers/{rng.randrange(8)}.png{query}"


def picture_loop(base: str, deadline: float, seed: int, results: Results) -> None:
    rng = random.Random(seed)
    with httpx.Client(timeout=120) as client:
        while time.monotonic() < deadline:
            start = time.perf_counter()
            url = picture_url(base, rng)
            try:
                response = client.get(url)
                status = response.status_code
                retry = response.headers.get("retry-after")
            except httpx.HTTPError as error:
                status, retry = -1, None
                with results.lock:
                    results.problems[f"picture transport: {type(error).__name__}"] += 1
                time.sleep(0.1)
            with results.lock:
                results.statuses[status] += 1
                if status > 0:
                    results.latencies.append(time.perf_counter() - start)
                # 422: a picture over 4096 pixels a side, which the route refuses; 404: a
                # run the uploads have pushed out of the server's run cache.
                if status not in (200, 422, 503, -1) and not (status == 404 and "/runs/" in url):
                    results.problems[f"picture: {status}"] += 1
                if status == 503 and not retry:
                    results.problems["picture 503 without Retry-After"] += 1
            if status == 503:
                time.sleep(min(float(retry or 1), 5))


def run_clients(
    base: str,
    uploads: list[Upload],
    bad: list[Upload],
    clients: int,
    seconds: float,
    orders: list[list[Upload]] | None = None,
    pictures: tuple[int, Results] = (0, Results()),
) -> Results:
    """`clients` threads uploading for `seconds`, or each sending its list of `orders`;
    beside them `pictures[0]` threads fetching pictures, counted in `pictures[1]`."""
    results = Results()
    deadline = time.monotonic() + seconds
    threads = [
        threading.Thread(
            target=client_loop,
            args=(base, uploads, bad, deadline, i, results, orders[i] if orders else None),
        )
        for i in range(clients)
    ]
    count, picture_results = pictures
    threads += [
        threading.Thread(target=picture_loop, args=(base, deadline, i, picture_results))
        for i in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def warm_up(base: str, uploads: list[Upload], bad: list[Upload], clients: int) -> Results:
    """Every client sends one sample (and one corpus case) at the same moment."""
    orders = [
        [uploads[i % len(uploads)], *([bad[i % len(bad)]] if bad else [])] for i in range(clients)
    ]
    return run_clients(base, uploads, bad, clients, WARM_UP_SECONDS, orders)


def fill_cache(base: str, uploads: list[Upload], runs: int, fetch: bool = False) -> int:
    """`runs` uploads, one after another; with `fetch`, each run's first layer is fetched
    too, so that a worker holds its volumes (one a compute process made is recomputed)."""
    photos = [u for u in uploads if u.expected == frozenset({200, 503})]
    made = 0
    with httpx.Client(timeout=120) as client:
        for i in range(runs):
            status, _, run_id, _ = one_upload(client, base, photos[i % len(photos)])
            made += status == 200
            if fetch and status == 200:
                client.get(f"{base}/api/runs/{run_id}/layers/0.json")
    return made


# --- the report -------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] * 1000:.0f} ms"


def status_name(status: int) -> str:
    return {-1: "transport error", -2: "stream cut", -3: "non-JSON error"}.get(status, str(status))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (<= 256)")
    parser.add_argument("--seconds", type=float, help="how long (default 60; --soak: 600)")
    parser.add_argument("--hostile", action="store_true", help="mix in the hostile corpus")
    parser.add_argument("--soak", action="store_true", help="fill the run cache, run long")
    parser.add_argument("--url", help="a running server on this machine (loopback only)")
    parser.add_argument("--pid", type=int, help="with --url: the server's pid, for memory")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--cache-runs", type=int, default=64, help="the server's run cache size")
    parser.add_argument(
        "--pictures", type=int, default=0, help="clients fetching upscale=16 pictures beside"
    )
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()
    seconds = args.seconds or (600.0 if args.soak else 60.0)
    if not 1 <= args.clients <= MAX_CLIENTS or not 0 < seconds <= MAX_SECONDS:
        parser.error(f"--clients must be 1 to {MAX_CLIENTS}, --seconds up to {MAX_SECONDS}")
    if not 0 <= args.pictures <= MAX_CLIENTS:
        parser.error(f"--pictures must be 0 to {MAX_CLIENTS}")

    uploads = samples()
    bad = hostile() if args.hostile else []
    log = tempfile.TemporaryFile(mode="w+")
    with tempfile.TemporaryDirectory(prefix="convscope-load-") as runs_dir:
        server = None
        if args.url:
            base, pid = loopback_only(args.url), args.pid
        else:
            os.environ["CONVSCOPE_RUN_CACHE_RUNS"] = str(args.cache_runs)
            port = free_port()
            server = start_server(
                port, args.workers, env={"CONVSCOPE_RUNS_DIR": runs_dir}, output=log
            )
            base, pid = f"http://127.0.0.1:{port}", server.pid
        try:
            if args.soak:
                made = fill_cache(base, uploads, args.cache_runs + 8)
                print(f"run cache filled: {made} runs made (the cache keeps {args.cache_runs})")
            cifar10 = [u for u in uploads if u.model == "cifar10"]
            fill_cache(base, cifar10, VOLUME_MEMORY_RUNS * max(1, args.workers), fetch=True)
            before_warm_up = sum(memory_kb(p, "VmRSS") for p in family(pid)) if pid else 0
            warm = warm_up(base, uploads, bad, args.clients)
            monitor = MemoryMonitor(pid) if pid else None
            if monitor:
                warm_up_growth = (monitor.sample() - before_warm_up) / 1024
                monitor.start()
            pictures = Results()
            started = time.monotonic()
            results = run_clients(
                base, uploads, bad, args.clients, seconds, pictures=(args.pictures, pictures)
            )
            wall = time.monotonic() - started
            if monitor:
                monitor.stop()
        finally:
            if server:
                server.terminate()
                server.wait(timeout=30)
        log.seek(0)
        # Only the server this script started has a log to read.
        tracebacks = None if args.url else log.read().count("Traceback")
        cached = len(list(Path(runs_dir).glob("*.run")))

    total = sum(results.statuses.values())
    fives = sum(n for s, n in results.statuses.items() if s >= 500 and s != 503)
    print(
        f"{args.clients} clients, {wall:.1f} s, {os.cpu_count()} cores"
        f"{', hostile mix' if args.hostile else ''}{', soak' if args.soak else ''}: "
        f"{total} requests ({total / wall:.1f}/s), "
        f"{len(results.run_latencies)} full runs, {sum(results.refetches.values())} refetches"
    )
    print(
        "  answers: "
        + ", ".join(f"{status_name(s)}: {n}" for s, n in sorted(results.statuses.items()))
    )
    print(
        f"  latency, every answer: p50 {percentile(results.latencies, 50)}, "
        f"p99 {percentile(results.latencies, 99)}; full runs (upload -> scores): "
        f"p50 {percentile(results.run_latencies, 50)}, p99 {percentile(results.run_latencies, 99)}"
    )
    figures = {
        "clients": args.clients,
        "seconds": round(wall, 1),
        "requests": total,
        "statuses": {status_name(s): n for s, n in results.statuses.items()},
        "p50_ms": percentile(results.latencies, 50),
        "p99_ms": percentile(results.latencies, 99),
        "problems": dict(results.problems + warm.problems),
        "server_tracebacks": tracebacks,
    }
    print(
        f"  warm-up ({sum(warm.statuses.values())} uploads at once, not counted above): "
        + ", ".join(f"{status_name(s)}: {n}" for s, n in sorted(warm.statuses.items()))
    )
    if args.pictures:
        print(
            f"  pictures ({args.pictures} clients, upscale={PICTURE_UPSCALE}, the newest "
            f"{RECENT_RUNS} runs' first 8 layers and the cifar10 filters): "
            f"{sum(pictures.statuses.values())} requests, "
            + ", ".join(f"{status_name(s)}: {n}" for s, n in sorted(pictures.statuses.items()))
            + f"; p50 {percentile(pictures.latencies, 50)}, "
            f"p99 {percentile(pictures.latencies, 99)}"
        )
        figures["pictures"] = {
            "statuses": {status_name(s): n for s, n in pictures.statuses.items()},
            "p50_ms": percentile(pictures.latencies, 50),
        }
    figures["run_p50_ms"] = percentile(results.run_latencies, 50)
    failed = bool(fives or results.problems or warm.problems or pictures.problems or tracebacks)
    if monitor:
        peak = max(kb for _, kb in monitor.samples)
        start, end = monitor.samples[0][1], monitor.samples[-1][1]
        # Growth is counted from the 10th second (allocators and caches warm up before);
        # a run too short for that is measured from its start.
        since = 10 if wall >= 20 else 0
        growth = (end - monitor.at(since)) / 1024
        print(
            f"  server memory (VmRSS, server and children): before the warm-up "
            f"{before_warm_up / 1024:.0f} MB ({warm_up_growth:+.0f} MB in it: the first "
            f"forwards and the decoding workers' start); measured run: "
            f"start {start / 1024:.0f} MB, "
            f"at {since} s {monitor.at(since) / 1024:.0f} MB, end {end / 1024:.0f} MB, "
            f"peak {peak / 1024:.0f} MB (VmHWM {monitor.hwm_kb / 1024:.0f} MB); "
            f"growth from {since} s to the end {growth:+.1f} MB"
        )
        figures |= {
            "peak_rss_mb": round(peak / 1024),
            "growth_mb": round(growth, 1),
            "warm_up_growth_mb": round(warm_up_growth, 1),
        }
        failed |= growth >= GROWTH_LIMIT_MB
        if args.soak:
            print("  RSS over time:")
            print("    seconds   MB")
            step = max(1, round(len(monitor.samples) / 20))
            rows = monitor.samples[::step]
            if rows[-1] is not monitor.samples[-1]:
                rows.append(monitor.samples[-1])
            for t, kb in rows:
                print(f"    {t:7.0f}  {kb / 1024:5.0f}")
            if not args.url:
                print(f"  runs in the cache at the end: {cached}")
    else:
        print("  server memory: unknown (pass --pid with --url)")
    print(
        f"  5xx other than 503: {fives}; 503 without Retry-After: "
        f"{results.problems.get('503 without Retry-After', 0)}; server tracebacks: {tracebacks}"
    )
    for problem, count in sorted((results.problems + warm.problems + pictures.problems).items()):
        print(f"  PROBLEM {problem}: {count}")
    if args.json:
        print(json.dumps(figures))
    print("FAILED" if failed else "OK")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
