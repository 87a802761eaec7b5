"""Where a real server's CPU goes per run, under load: py-spy samples `convscope serve` (and
its decoding workers) while clients send full cifar10 runs, and the samples are sorted into
the pieces of the server path, printed as a Markdown table (BENCHMARKS.md, "Server speed").

    pip install py-spy            # a profiling tool for this script, not a dependency
    python benchmarks/profile_server.py [--clients 32] [--seconds 20] [--rate 250]
                                        [--accept-encoding ...] [--encoding uint8-predicted]

Each sample of a thread that is running (py-spy leaves out idle threads) is given to the
first piece, in the table's order, that one of its frames matches; "ms per run" is
samples / rate / runs. The client threads run in this process, beside the server, as in
benchmarks/server_speed.py.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from local_server import free_port, start_server
from server_speed import Session, photo

from app import stream

# (piece, substrings of a frame "function (file)"), in order: the first match wins.
PIECES = [
    ("decoding (imaging, PIL)", ["_serve (app/decode_pool.py", "(PIL", "imaging.py"]),
    ("decoding (server's side: the hop)", ["prepare (app/decode_pool.py", "call (app/decode_pool"]),
    ("multipart parsing", ["upload.py", "python_multipart"]),
    ("forward (the layers)", ["(model/", "forward_batch (app/inference.py"]),
    ("statistics and finite check", ["stats (app/inference.py", "layers (app/inference.py"]),
    ("encoding the lines", ["(app/stream.py", "compress", "Gzip.__call__"]),
    ("saving the run", ["(app/runs.py"]),
    ("the record (pydantic)", ["(app/record.py", "add_layer", "add_scores", "(pydantic"]),
    ("the gate: thread hops, the streamed response", ["(app/gate.py"]),
    # Last of the app's pieces: every frame of a compute process is under its _serve.
    ("compute processes: frames, sockets", ["(app/compute_pool.py"]),
    ("HTTP: uvicorn, starlette, FastAPI", ["(uvicorn", "(starlette", "(fastapi", "(httptools"]),
    ("event loop (asyncio)", ["(asyncio", "(selectors"]),
]
OTHER = "other"


# Leaves where a thread waits: py-spy, in a container on busy cores, still samples some of
# them (a runnable thread not yet running looks active), so they are shown apart.
WAITING = "threads waiting (idle compute threads, the decode reply)"
WAIT_LEAVES = (
    "Condition.wait (threading.py)",
    "_worker (concurrent/futures/thread.py)",
    "Connection._recv (multiprocessing/connection.py)",
    "Connection._poll (multiprocessing/connection.py)",
    "select (selectors.py)",
    "SocketIO.readinto (socket.py)",  # a compute process waiting for its next run
)
# uvloop runs the loop in C: its socket writes, reads and epoll waits all end here.
LOOP = "event loop in C (uvloop: sockets, epoll)"
LOOP_LEAF = "Runner.run (asyncio/runners.py)"


def piece_of(stack: str) -> str:
    frames = stack.split(";")
    if frames[-1].endswith(WAIT_LEAVES):
        return WAITING
    if frames[-1] == LOOP_LEAF:
        return LOOP
    for name, needles in PIECES:
        if any(needle in frame for frame in frames for needle in needles):
            return name
    return OTHER


def load(port: int, path: str, image: bytes, clients: int, seconds: float, headers: dict) -> int:
    """Runs completed by `clients` threads in `seconds` (server_speed.py's light clients)."""
    done = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def loop() -> None:
        session = Session("raw", port, path, image, headers)
        try:
            while time.perf_counter() < deadline:
                status, _, _ = session.run()
                if status == 200:
                    with lock:
                        done[0] += 1
        finally:
            session.close()

    threads = [threading.Thread(target=loop) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return done[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rate", type=int, default=250, help="samples per second per thread")
    parser.add_argument("--accept-encoding", default="gzip, deflate, br, zstd")
    parser.add_argument("--encoding", default="uint8-predicted", choices=stream.ENCODINGS)
    args = parser.parse_args()
    headers = {"Accept-Encoding": args.accept_encoding}
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not os.path.exists(spy):
        raise SystemExit("py-spy is not installed: pip install py-spy")

    image = photo()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="convscope-profile-") as folder:
        env = {"CONVSCOPE_MODELS": "cifar10", "CONVSCOPE_RUNS_DIR": f"{folder}/runs"}
        server = start_server(port, 1, env)
        try:
            path = f"/api/models/cifar10/forward?encoding={args.encoding}"
            load(port, path, image, 4, 2, headers)  # warm-up: decoding workers, threads, page cache
            raw = Path(folder) / "profile.txt"
            command = [spy, "record", "-p", str(server.pid), "-s", "-r", str(args.rate)]
            command += ["-d", str(int(args.seconds)), "-f", "raw", "--nolineno", "-o", str(raw)]
            recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(1)  # py-spy attaches
            runs = load(port, path, image, args.clients, args.seconds - 1.5, headers)
            _, errors = recorder.communicate(timeout=300)
            if not raw.exists():
                raise SystemExit(f"py-spy wrote nothing: {errors.decode()[-500:]}")
            if os.environ.get("PROFILE_KEEP"):
                shutil.copy(raw, os.environ["PROFILE_KEEP"])
            counts: collections.Counter[str] = collections.Counter()
            for line in raw.read_text().splitlines():
                stack, _, count = line.rpartition(" ")
                counts[piece_of(stack)] += int(count)
        finally:
            server.terminate()
            server.wait(timeout=30)

    total = sum(counts.values())
    print(
        f"{args.clients} clients, {runs} runs in about {args.seconds - 1.5:.0f} s, "
        f"{total} samples at {args.rate}/s, Accept-Encoding: {args.accept_encoding}, "
        f"encoding={args.encoding}, load average {os.getloadavg()[0]:.1f}"
    )
    print("| piece | share of samples | ms per run |")
    print("| --- | --- | --- |")
    for name in [name for name, _ in PIECES] + [LOOP, WAITING, OTHER]:
        share = counts[name] / max(total, 1)
        per_run = counts[name] / args.rate / max(runs, 1) * 1000
        print(f"| {name} | {share:.1%} | {per_run:.2f} |")
    print(f"| all | 100% | {total / args.rate / max(runs, 1) * 1000:.2f} |")


if __name__ == "__main__":
    main()
