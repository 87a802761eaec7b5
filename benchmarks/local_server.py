"""Start `convscope serve` on a free loopback port for a benchmark, and wait until it answers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    port: int,
    workers: int = 1,
    env: dict[str, str] | None = None,
    output: IO | int = subprocess.DEVNULL,
    timeout: float = 60,
) -> subprocess.Popen:
    """The server on 127.0.0.1:port with extra environment variables, once /healthz is 200."""
    command = [sys.executable, "-m", "app", "serve", "--port", str(port), "--workers", str(workers)]
    server = subprocess.Popen(
        command,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit(f"the server did not start in {timeout:.0f} s")
