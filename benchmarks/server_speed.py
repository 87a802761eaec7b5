"""The server end to end: upload a photo, read the NDJSON stream to its last line.

Starts `python -m app serve` on a free loopback port (cifar10 only, runs in a temporary
folder) and prints, for full cifar10 runs:
- one client: p50 / p99 / mean latency (upload -> scores line), bytes on the wire per run,
- N concurrent clients (threads, one keep-alive connection each, for a fixed time):
  runs/s, p50 / p99 latency, errors (anything but a 200 stream that ends in scores) and
  503 "busy" answers, which are counted apart.

    python benchmarks/server_speed.py [--runs 200] [--seconds 10] [--clients 8 32 64]
                                      [--places 64] [--workers 1]
                                      [--accept-encoding "gzip, deflate, br, zstd"]
                                      [--encoding uint8-predicted] [--client raw|httpx]

By default the clients ask as the page does in Chromium (its Accept-Encoding, and
`?encoding=uint8-predicted`); `--accept-encoding identity --encoding uint8` measures plain
NDJSON. "bytes on the wire" counts the response body as it travelled (compressed).

The yardstick: one bare forward of the same preprocessed image (Network.forward, one BLAS
thread, as the server's compute threads run it), timed in this process as CPU time just
before and after each concurrency level, so that the server's CPU per run is printed as a
ratio to it ("x forward") under the same load on the machine.

The clients are benchmarks/raw_client.py by default (a keep-alive socket and a request
built once: about a tenth of httpx's CPU per run, so that on 2 cores the client does not
take the server's core); `--client httpx` uses httpx, as before. Both check every run to
its last line.

--places sets CONVSCOPE_MAX_CONCURRENT_FORWARDS for the server (runs taken on at once; 64
by default); with fewer places than clients the rest are answered 503 at once, by design. The client
threads share the machine with the server, as on any one-machine loopback test.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
from local_server import free_port, start_server
from PIL import Image
from raw_client import RawClient
from threadpoolctl import threadpool_limits

from app import stream

REPO = Path(__file__).resolve().parent.parent
SCORES = b'{"type":"scores"'


def photo(width: int = 320, height: int = 240) -> bytes:
    """A photo-like JPEG: smooth gradients and noise (about 30 KB)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], -1)
    pixels = np.clip(pixels + rng.normal(0, 12, pixels.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def one_run(client: httpx.Client, url: str, image: bytes) -> tuple[int, float, int]:
    """(status, seconds until the last line, body bytes as sent); status 0: the stream broke."""
    start = time.perf_counter()
    files = {"image": ("photo.jpg", image, "image/jpeg")}
    with client.stream("POST", url, files=files) as response:
        size, tail = 0, b""
        gzipped = response.headers.get("content-encoding") == "gzip"
        inflate = zlib.decompressobj(16 + 15)
        for chunk in response.iter_raw():
            size += len(chunk)
            tail = (tail + (inflate.decompress(chunk) if gzipped else chunk))[-4096:]
        elapsed = time.perf_counter() - start
    if response.status_code != 200:
        return response.status_code, elapsed, size
    last = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    return (200 if last.startswith(SCORES) else 0), elapsed, size


class Session:
    """One client's connection: run() -> (status, seconds until the last line, body bytes);
    status 0: the stream broke or did not end in a scores line."""

    def __init__(self, kind: str, port: int, path: str, image: bytes, headers: dict):
        self.kind = kind
        if kind == "raw":
            self.raw = RawClient("127.0.0.1", port)
            self.request = self.raw.upload_request(path, image, headers)
        else:
            self.client = httpx.Client(timeout=60, headers=headers)
            self.url, self.image = f"http://127.0.0.1:{port}{path}", image

    def run(self) -> tuple[int, float, int]:
        if self.kind != "raw":
            return one_run(self.client, self.url, self.image)
        start = time.perf_counter()
        status, size, last = self.raw.run(self.request)
        elapsed = time.perf_counter() - start
        return (status if status != 200 or last.startswith(SCORES) else 0), elapsed, size

    def close(self) -> None:
        (self.raw if self.kind == "raw" else self.client).close()


ROLES = (("compute processes", "app.compute_pool"), ("decoding workers", "app.decode_pool"))


def cpu_by_role(pid: int, into: dict[str, float] | None = None) -> dict[str, float]:
    """User + system CPU seconds so far of a process and every process under it (Linux
    /proc), by role: "server" (the server and its workers, with `--workers N`), "compute
    processes", "decoding workers"."""
    into = {} if into is None else into
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return into
    role = next((name for name, module in ROLES if module in command), "server")
    into[role] = into.get(role, 0.0) + sum(int(f) for f in fields[11:13]) / os.sysconf("SC_CLK_TCK")
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in children.read_text().split():
            cpu_by_role(int(child), into)
    return into


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds so far of a process and every process under it."""
    return sum(cpu_by_role(pid).values())


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Yardstick:
    """CPU milliseconds of one bare forward of the benchmark's image, in this process."""

    def __init__(self, image: bytes):
        from app import imaging
        from app.registry import Registry

        served = Registry.load(("cifar10",)).get("cifar10")
        self.net = served.network
        pixels = imaging.prepare(
            image, self.net.input_shape, digits=False, max_pixels=imaging.MAX_PIXELS
        )
        self.x = self.net.preprocess(pixels[None])
        self.measure(20)  # warm-up

    def measure(self, runs: int = 100) -> float:
        with threadpool_limits(1, user_api="blas"):
            start = time.thread_time()
            for _ in range(runs):
                self.net.forward(self.x)
            return (time.thread_time() - start) * 1000 / runs


class CpuMeter:
    """CPU milliseconds per run spent by the server and by this client process, and the
    server's as a ratio to a bare forward measured before and after."""

    def __init__(self, server_pid: int, yardstick: Yardstick):
        self.pid = server_pid
        self.yardstick = yardstick
        self.forward_before = yardstick.measure()
        self.roles, self.client = cpu_by_role(server_pid), own_cpu_seconds()

    def report(self, runs: int) -> str:
        now = cpu_by_role(self.pid)
        roles = {
            role: (seconds - self.roles.get(role, 0.0)) * 1000 / max(runs, 1)
            for role, seconds in now.items()
        }
        server = sum(roles.values())
        client = (own_cpu_seconds() - self.client) * 1000 / max(runs, 1)
        forward = (self.forward_before + self.yardstick.measure()) / 2
        split = ", ".join(f"{role} {ms:.2f}" for role, ms in sorted(roles.items()))
        return (
            f"CPU per run: server {server:.2f} ms ({split}), client {client:.1f} ms; one bare "
            f"forward {forward:.2f} ms; server / forward {server / forward:.2f}x"
        )


def percentiles(seconds: list[float]) -> str:
    if not seconds:
        return "-"
    ms = np.array(seconds) * 1000
    return f"p50 {np.percentile(ms, 50):6.1f} ms  p99 {np.percentile(ms, 99):6.1f} ms"


def single_client(
    connect: Callable[[], Session], image: bytes, runs: int, server_pid: int, yardstick: Yardstick
) -> None:
    session = connect()
    try:
        for _ in range(10):  # warm-up: threads, BLAS, page cache
            session.run()
        meter = CpuMeter(server_pid, yardstick)
        results = [session.run() for _ in range(runs)]
    finally:
        session.close()
    times = [t for status, t, _ in results if status == 200]
    errors = sum(status != 200 for status, _, _ in results)
    sizes = [s for status, _, s in results if status == 200]
    print(
        f"1 client, {runs} runs: {percentiles(times)}  mean {np.mean(times) * 1000:6.1f} ms  "
        f"errors {errors}"
    )
    print(f"  {meter.report(runs)}")
    request = len(image) + 300  # the JPEG plus multipart and HTTP headers, about
    print(
        f"bytes on the wire per run: response body {np.mean(sizes) / 1000:.1f} KB, "
        f"request about {request / 1000:.1f} KB"
    )


def concurrent_clients(
    connect: Callable[[], Session],
    clients: int,
    seconds: float,
    server_pid: int,
    yardstick: Yardstick,
) -> None:
    lock = threading.Lock()
    times: list[float] = []
    counts = {"ok": 0, "busy": 0, "errors": 0}
    start = time.perf_counter()
    deadline = start + seconds

    def client_loop() -> None:
        session = connect()
        try:
            while time.perf_counter() < deadline:
                try:
                    status, elapsed, _ = session.run()
                except (httpx.HTTPError, OSError, ValueError):
                    status, elapsed = -1, 0.0
                with lock:
                    if status == 200:
                        counts["ok"] += 1
                        times.append(elapsed)
                    elif status == 503:
                        counts["busy"] += 1
                    else:
                        counts["errors"] += 1
                if status == 503:
                    time.sleep(0.05)  # a polite client would wait for Retry-After
        finally:
            session.close()

    meter = CpuMeter(server_pid, yardstick)
    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    print(
        f"{clients:3d} clients, {wall:4.1f} s: {counts['ok'] / wall:6.1f} runs/s  "
        f"{percentiles(times)}  errors {counts['errors']}  busy (503) {counts['busy']}"
    )
    print(f"  {meter.report(counts['ok'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="runs for the one-client figures")
    parser.add_argument("--seconds", type=float, default=10, help="time per concurrency level")
    parser.add_argument("--clients", type=int, nargs="+", default=[8, 32, 64])
    parser.add_argument("--places", type=int, help="CONVSCOPE_MAX_CONCURRENT_FORWARDS")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--accept-encoding", default="gzip, deflate, br, zstd")
    parser.add_argument("--encoding", default="uint8-predicted", choices=stream.ENCODINGS)
    parser.add_argument("--client", default="raw", choices=["raw", "httpx"])
    args = parser.parse_args()
    headers = {"Accept-Encoding": args.accept_encoding}
    yardstick = Yardstick(photo())

    image = photo()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="convscope-bench-") as runs_dir:
        env = {"CONVSCOPE_MODELS": "cifar10", "CONVSCOPE_RUNS_DIR": runs_dir}
        if args.places:
            env["CONVSCOPE_MAX_CONCURRENT_FORWARDS"] = str(args.places)
        server = start_server(port, args.workers, env)
        try:
            path = f"/api/models/cifar10/forward?encoding={args.encoding}"

            def connect() -> Session:
                return Session(args.client, port, path, image, headers)

            print(
                f"cifar10, {len(image) / 1000:.1f} KB 320x240 JPEG, {os.cpu_count()} cores, "
                f"{args.workers} worker(s), {args.places or 'default'} places, "
                f"Accept-Encoding: {args.accept_encoding}, encoding={args.encoding}, "
                f"{args.client} clients, load average {os.getloadavg()[0]:.1f}"
            )
            single_client(connect, image, args.runs, server.pid, yardstick)
            for clients in args.clients:
                concurrent_clients(connect, clients, args.seconds, server.pid, yardstick)
            print(f"load average at the end {os.getloadavg()[0]:.1f}")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
