"""Uploads decoded in worker processes that have a deadline and a memory cap.

    pool = DecodePool(workers=2, seconds=4, memory_bytes=512 * MB)
    pixels = await pool.prepare(data, (32, 32, 3), digits=False, max_pixels=..., max_aspect=...)
    pool.close()

Everything app/imaging.py bounds from an image's header, a decoder can still outrun: a
format's slow path nobody has found yet, a decompressor that is quadratic on some input.
So the decoding itself runs in a separate process, which the server can stop without
asking it, and which cannot take more memory than it is given:

- each worker caps its own address space (RLIMIT_AS) at what it needed to start plus
  `memory_bytes`, so an allocation past it fails with MemoryError (answered 413) instead
  of taking the server's memory;
- the caller waits `seconds` for the answer; past it the worker is killed (SIGKILL) and
  replaced, and the upload is answered 422;
- a worker whose resident memory grew by more than RECYCLE_BYTES during a job exits
  after answering and is replaced, so the memory of a big decode goes back to the system.

Workers are plain `python -P -m app.decode_pool FD` processes, as in model/training/workers.py
(not multiprocessing's, whose spawn runs the caller's main script again), and speak a
small protocol of JSON headers and raw bytes over a socket pair: nothing is unpickled from
a process that has just parsed hostile bytes. They start on the first upload.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import struct
import subprocess
import sys
from collections import deque
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from app.imaging import ImageError
from app.waiters import Waiters

MB = 1024 * 1024
RECYCLE_BYTES = 64 * MB
# A new worker imports NumPy and Pillow first; that is not the upload's time.
START_SECONDS = 60.0
MAX_REPLY = 1 << 24


class DecodePool:
    """`workers` decoding processes, shared by the event loop's uploads: `prepare` awaits
    a free worker and its answer without a thread of its own (a thread hop per upload cost
    the server's event loop half a millisecond: BENCHMARKS.md, "The server path")."""

    def __init__(self, workers: int, seconds: float, memory_bytes: int):
        self.workers = workers
        self.seconds = seconds
        self.memory_bytes = memory_bytes
        self._idle: deque[_Worker | None] = deque([None] * workers)  # started when needed
        self._waiting: Waiters[_Worker | None] = Waiters()
        self._live: set[_Worker] = set()
        self._closed = False
        self.killed = 0  # workers stopped at the deadline (for tests and benchmarks)

    async def prepare(
        self,
        data: bytes,
        shape: tuple[int, int, int],
        *,
        digits: bool,
        max_pixels: int,
        max_aspect: float,
    ) -> np.ndarray:
        """imaging.prepare(...) in a worker; ImageError for every way it can fail."""
        job = {
            "shape": list(shape),
            "digits": digits,
            "max_pixels": max_pixels,
            "max_aspect": max_aspect,
        }
        worker = await self._take()
        try:
            if worker is None or not worker.alive():
                worker = self._start()
            return await worker.call(job, data, self)
        finally:
            if worker is not None and not worker.alive():
                self._forget(worker)
                worker = None
            self._give(worker)

    async def _take(self) -> _Worker | None:
        if self._idle:
            # The longest idle first: every worker starts within the first uploads, so the
            # pool's memory is taken at its first use, not bit by bit under load.
            return self._idle.popleft()
        return await self._waiting.wait(give_back=self._give)

    def _give(self, worker: _Worker | None) -> None:
        if (waiter := self._waiting.next()) is not None:
            waiter.set_result(worker)
        else:
            self._idle.append(worker)

    def _start(self) -> _Worker:
        if self._closed:
            raise ImageError(503, "The server is shutting down; please try again shortly.")
        worker = _Worker(self.memory_bytes)
        self._live.add(worker)
        return worker

    def _forget(self, worker: _Worker) -> None:
        worker.stop()
        self._live.discard(worker)

    def pids(self) -> list[int]:
        return [worker.process.pid for worker in self._live if worker.alive()]

    def close(self) -> None:
        self._closed = True
        workers, self._live = list(self._live), set()
        for worker in workers:
            worker.stop()


class _Worker:
    """One decoding process and the server's end of its socket (multiprocessing's
    Connection framing: a 4-byte big-endian length, then the bytes)."""

    def __init__(self, memory_bytes: int):
        package_root = str(Path(__file__).resolve().parent.parent)
        path = os.pathsep.join([package_root, *filter(None, [os.environ.get("PYTHONPATH")])])
        self._socket, theirs = socket.socketpair()
        env = {
            **os.environ,
            "PYTHONPATH": path,
            # One thread and one malloc arena: the cap is then the worker's whole budget.
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "MALLOC_ARENA_MAX": "1",
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-P",
                "-m",
                "app.decode_pool",
                str(theirs.fileno()),
                str(memory_bytes),
            ],
            pass_fds=[theirs.fileno()],
            env=env,
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.ready = False
        self.dead = False

    def alive(self) -> bool:
        return not self.dead and self.process.poll() is None

    async def call(self, job: dict[str, Any], data: bytes, pool: DecodePool) -> np.ndarray:
        answered = False
        try:
            if not self.ready:
                self._reader, self._writer = await asyncio.open_unix_connection(sock=self._socket)
                await asyncio.wait_for(self._receive(64), START_SECONDS)
                self.ready = True
            await self._send(json.dumps(job).encode(), data)
            try:
                reply_bytes = await asyncio.wait_for(self._receive(MAX_REPLY), pool.seconds)
            except TimeoutError:
                pool.killed += 1
                self.stop()
                raise ImageError(
                    422,
                    f"Decoding this image took more than {pool.seconds:g} seconds, so it was "
                    "stopped; please send a smaller or simpler image.",
                ) from None
            reply = json.loads(reply_bytes)
            pixels = await self._receive(MAX_REPLY) if reply["ok"] else b""
            answered = True
        except (EOFError, OSError, ValueError, KeyError, asyncio.IncompleteReadError):
            self.stop()
            raise ImageError(
                422, "The image could not be decoded: its decoder stopped on it."
            ) from None
        finally:
            if not answered:  # cancelled or failed midway: its answer would confuse the next
                self.stop()
        if reply.get("retire"):
            self.stop()
        if not reply["ok"]:
            raise ImageError(int(reply["status"]), str(reply["detail"]))
        shape = tuple(job["shape"])
        return np.frombuffer(pixels, np.uint8).reshape(shape).copy()

    async def _send(self, *messages: bytes) -> None:
        for message in messages:
            self._writer.write(struct.pack("!i", len(message)))
            self._writer.write(message)
        await self._writer.drain()

    async def _receive(self, max_length: int) -> bytes:
        (length,) = struct.unpack("!i", await self._reader.readexactly(4))
        if not 0 <= length <= max_length:
            raise ValueError(f"a message of {length} bytes")
        return await self._reader.readexactly(length)

    def stop(self) -> None:
        if self.dead:
            return
        self.dead = True
        if self._writer is not None:
            self._writer.close()
        else:
            self._socket.close()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


# --- the worker process ------------------------------------------------------------------


def _resident_bytes() -> int:
    """This process's resident memory (/proc/self/statm: a third of the cost of status)."""
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _cap_address_space(memory_bytes: int) -> None:
    try:
        import resource

        limit = _status_kb("VmSize") * 1024 + memory_bytes
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, OSError, ValueError):
        pass  # not Linux: the deadline still holds


def _serve(connection: Connection, memory_bytes: int) -> None:
    """Decode jobs until the server closes the connection."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle
    from PIL import Image

    from app import imaging

    Image.init()  # every format plugin imported before the cap, not during a job
    imaging.configure_pillow(imaging.MAX_PIXELS)
    _cap_address_space(memory_bytes)
    resident = _resident_bytes()
    connection.send_bytes(b"ready")
    while True:
        try:
            job = json.loads(connection.recv_bytes(1 << 16))
            data = connection.recv_bytes()
        except (EOFError, OSError):
            return
        pixels = b""
        try:
            imaging.configure_pillow(job["max_pixels"])
            array = imaging.prepare(
                data,
                tuple(job["shape"]),
                digits=job["digits"],
                max_pixels=job["max_pixels"],
                max_aspect=job["max_aspect"],
            )
            pixels = np.ascontiguousarray(array, np.uint8).tobytes()
            reply: dict[str, Any] = {"ok": True}
        except imaging.ImageError as error:
            reply = {"ok": False, "status": error.status, "detail": error.detail}
        except MemoryError:
            reply = {
                "ok": False,
                "status": 413,
                "detail": f"Decoding this image needs more than the {memory_bytes // MB} MiB "
                "a decode may use; please send a smaller image.",
            }
        except Exception as error:  # a decoder failing in a way nothing above expected
            reason = str(error).strip().rstrip(".")[:200] or type(error).__name__
            reply = {
                "ok": False,
                "status": 422,
                "detail": f"The image could not be decoded: {reason}.",
            }
        del data
        reply["retire"] = _resident_bytes() - resident > RECYCLE_BYTES
        try:
            connection.send_bytes(json.dumps(reply).encode())
            if reply["ok"]:
                connection.send_bytes(pixels)
        except OSError:
            return
        if reply["retire"]:
            return


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1])), int(sys.argv[2]))
