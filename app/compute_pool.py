"""Forward runs computed in child processes, one per core, so that one server process uses
every core.

The threads of one process share one GIL: with two compute threads a worker served no more
runs per second than with one, and the hand-overs between them and the event loop cost
several milliseconds of CPU per run (BENCHMARKS.md, "The server path"). So a run's layers,
statistics, lines and gzip are computed in a child process, which sends each line back,
compressed for the wire, the moment it is ready; the server's event loop only moves bytes
(no thread of its own touches the run until it is kept).

    pool = ComputePool(2, ("cifar10",), models_dir, runs={"dir": ..., "max_runs": ...})
    pool.adopt(registry)                    # the networks the children load too
    if pool.serves(served):
        async for kind, payload in pool.run(job, pixels): ...
    await pool.close()

Children are plain `python -P -m app.compute_pool FD` processes (as app/decode_pool.py's),
all started at the first run (about 60 MB and half a second of CPU each). Each loads the
same models as the server (`models`, then the imported ones in `models_dir`) and says the
sha256 of each one's weights; a model whose network the server no longer holds as loaded
(replaced, or weights that differ) is computed on the server's own threads instead, as is
one whose volumes are too large to be recomputed cheaply (those runs are stored whole,
which needs the volumes in the server), and any run no child could be started for.

A child computes one run at a time. Frames on the socket pair, both ways: 4 bytes of
length (little-endian), a kind byte, the payload.

    server -> child: CONFIG json (once); per run: JOB json, then PIXELS (uint8 H, W, D)
    child -> server: READY json {model: sha256}; per run: CHUNK bytes for the wire (the run
                     line first) ..., SAVED (the run is in the store) or RECORD json (the
                     finished record, for the server to keep before it sends the next
                     CHUNK, the scores line), CHUNK, DONE; a run
                     that fails sends FAILED (the traceback, for the log), then a CHUNK with
                     the error line and the stream's end, then DONE.

A child that dies mid-run ends that run's response where it is (its gzip stream was the
child's, so no error line can follow) and is replaced on the next run.
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
import time
import traceback
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import numpy as np

from app.registry import Registry, ServedModel
from app.waiters import Waiters

CONFIG, READY, JOB, PIXELS, CHUNK, RECORD, SAVED, FAILED, DONE = b"CRJPKESFD"
HEADER = struct.Struct("<Ic")
# A new child imports NumPy and loads every model first; that is not a run's time.
START_SECONDS = 60.0


class ComputeProcessDied(RuntimeError):
    """The child computing a run exited (or stopped speaking the protocol) before its end."""


class ComputePool:
    """Up to `processes` children computing forward runs, shared by the event loop's runs."""

    def __init__(
        self,
        processes: int,
        models: tuple[str, ...],
        models_dir: Path,
        runs: dict[str, Any] | None = None,
    ):
        """`runs`: the RunStore's directory ("dir") and budgets, for the children to save
        runs there themselves; None (a store in Redis): the server saves them."""
        self.processes = processes
        self.config = {"models": list(models), "models_dir": str(models_dir), "runs": runs}
        self._networks: dict[str, tuple[object, str]] = {}
        self._idle: list[_Child] = []
        self._waiting: Waiters[_Child] = Waiters()
        self._children: set[_Child] = set()
        self._closed = False
        self._tasks: set[asyncio.Task] = set()
        self.started = 0  # children started so far (for tests and benchmarks)

    def adopt(self, registry: Registry, too_large: Any = None) -> None:
        """Note the networks the server loaded: runs of these, and only while the server
        still holds them, go to the children. `too_large(served)`: runs stored whole."""
        from model.channels import weights_sha256

        for model_id, served in registry.models.items():
            if too_large is None or not too_large(served):
                self._networks[model_id] = (served.network, weights_sha256(served.network))

    def serves(self, served: ServedModel) -> bool:
        """Whether a run of `served` is computed by a child."""
        known = self._networks.get(served.id)
        return self.processes > 0 and known is not None and known[0] is served.network

    async def run(
        self, job: dict[str, Any], pixels: np.ndarray
    ) -> AsyncIterator[tuple[int, bytes]]:
        """(kind, payload) for each CHUNK, RECORD, SAVED and FAILED frame of one run, in
        order (chunks that arrived together joined); ComputeProcessDied if its child dies
        first. The child is read by a task of its own and free for the next run as soon as
        this one is computed, however slowly its reader takes the lines (a slow or stalled
        client holds its lines, a few hundred KB, not a core)."""
        child = await self._acquire()
        if child.hashes.get(job["model"]) != self._networks[job["model"]][1]:
            self._release(child)
            del self._networks[job["model"]]  # its runs stay on the server's threads
            raise ComputeProcessDied(f"the compute processes have other weights: {job['model']}")
        frames: asyncio.Queue[tuple[int, bytes] | BaseException | None] = asyncio.Queue()
        self._spawn(self._read_run(child, job, pixels, frames))
        while (item := await frames.get()) is not None:
            if isinstance(item, BaseException):
                raise ComputeProcessDied(str(item))
            yield item

    async def _read_run(
        self, child: _Child, job: dict[str, Any], pixels: np.ndarray, frames: asyncio.Queue
    ) -> None:
        """Send the child its run and queue what it answers, to DONE (queued as None);
        then the child goes back to the pool."""
        try:
            child.send(JOB, json.dumps(job).encode())
            child.send(PIXELS, np.ascontiguousarray(pixels, np.uint8).tobytes())
            while True:
                chunks: list[bytes] = []
                for kind, payload in await child.receive():
                    if kind == CHUNK:
                        chunks.append(payload)
                        continue
                    if chunks:
                        frames.put_nowait((CHUNK, b"".join(chunks)))
                        chunks = []
                    if kind == DONE:
                        frames.put_nowait(None)
                        return
                    if kind not in (RECORD, SAVED, FAILED):
                        raise ComputeProcessDied(f"the compute process sent a {kind!r} frame")
                    frames.put_nowait((kind, payload))
                if chunks:
                    frames.put_nowait((CHUNK, b"".join(chunks)))
        except (ComputeProcessDied, OSError) as error:
            child.stop()
            frames.put_nowait(error)
        except BaseException as error:  # cancelled: the server is stopping
            child.stop()
            frames.put_nowait(ComputeProcessDied(repr(error)))
            raise
        finally:
            self._release(child)

    async def _acquire(self) -> _Child:
        if self._closed:
            raise ComputeProcessDied("the server is shutting down")
        while self._idle:
            child = self._idle.pop()
            if child.alive():
                return child
            self._forget(child)
        if len(self._children) < self.processes:
            child = self._new_child()
            # The others start beside it, so that the pool's memory is taken at its first
            # use, not bit by bit under load.
            while len(self._children) < self.processes:
                self._spawn(self._start_spare(self._new_child()))
            try:
                await child.start(self.config)
            except BaseException:
                self._forget(child)
                raise
            return child
        return await self._waiting.wait(give_back=self._release)

    def _release(self, child: _Child) -> None:
        if not child.alive():
            self._forget(child)
            child = None
        if (waiter := self._waiting.next()) is None:
            if child is not None:
                self._idle.append(child)
        elif child is None:  # the waiter takes the dead child's slot
            self._spawn(self._hand_new(self._new_child(), waiter))
        else:
            waiter.set_result(child)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """A background task, held until it ends (the loop keeps only a weak reference)."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _new_child(self) -> _Child:
        child = _Child()
        self._children.add(child)
        self.started += 1
        return child

    async def _start_spare(self, child: _Child) -> None:
        try:
            await child.start(self.config)
        except Exception:
            self._forget(child)
            return
        self._release(child)

    async def _hand_new(self, child: _Child, waiter: asyncio.Future[_Child]) -> None:
        try:
            await child.start(self.config)
        except Exception as error:
            self._forget(child)
            if not waiter.done():
                waiter.set_exception(ComputeProcessDied(str(error)))
            return
        if waiter.done():
            self._release(child)
        else:
            waiter.set_result(child)

    def _forget(self, child: _Child) -> None:
        child.stop()
        self._children.discard(child)

    def pids(self) -> list[int]:
        return [child.process.pid for child in self._children if child.alive()]

    async def close(self) -> None:
        self._closed = True
        for child in list(self._children):
            child.stop()
        self._children.clear()
        self._idle.clear()


class _Child:
    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.hashes: dict[str, str] = {}
        self._frames: _Frames | None = None
        self.dead = False

    async def start(self, config: dict[str, Any]) -> None:
        package_root = str(Path(__file__).resolve().parent.parent)
        path = os.pathsep.join([package_root, *filter(None, [os.environ.get("PYTHONPATH")])])
        ours, theirs = socket.socketpair()
        # One BLAS thread: the children are the parallelism, one per core.
        env = {**os.environ, "PYTHONPATH": path, "OPENBLAS_NUM_THREADS": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-P", "-m", "app.compute_pool", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            env=env,
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        loop = asyncio.get_running_loop()
        _, self._frames = await loop.create_unix_connection(_Frames, sock=ours)
        self.send(CONFIG, json.dumps(config).encode())
        try:
            [(kind, payload)] = await asyncio.wait_for(self.receive(), START_SECONDS)
        except (TimeoutError, ComputeProcessDied, OSError, ValueError) as error:
            self.stop()
            raise ComputeProcessDied(f"the compute process did not start ({error!r})") from None
        if kind != READY:
            self.stop()
            raise ComputeProcessDied(payload.decode(errors="replace")[-2000:])
        self.hashes = json.loads(payload)

    def alive(self) -> bool:
        return not self.dead and self.process is not None and self.process.poll() is None

    def send(self, kind: int, payload: bytes) -> None:
        """One frame to the child (a job is a few KB: the socket's buffer takes it whole)."""
        self._frames.transport.writelines([HEADER.pack(len(payload), bytes([kind])), payload])

    async def receive(self) -> list[tuple[int, bytes]]:
        """Every whole frame that has arrived from the child: at least one."""
        return await self._frames.receive()

    def stop(self) -> None:
        if self.dead:
            return
        self.dead = True
        if self._frames is not None and self._frames.transport is not None:
            self._frames.transport.close()
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class _Frames(asyncio.Protocol):
    """The server's end of a child's socket: whole frames, handed over all those that have
    arrived at once (so lines that came together go out together)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._frames: list[tuple[int, bytes]] = []
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        start = 0
        while len(self._buffer) - start >= HEADER.size:
            length, kind = HEADER.unpack_from(self._buffer, start)
            end = start + HEADER.size + length
            if len(self._buffer) < end:
                break
            self._frames.append((kind[0], bytes(self._buffer[start + HEADER.size : end])))
            start = end
        del self._buffer[:start]
        if self._frames:
            self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def receive(self) -> list[tuple[int, bytes]]:
        while not self._frames:
            if self._closed:
                raise ComputeProcessDied("the compute process closed its socket")
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        frames, self._frames = self._frames, []
        return frames


# --- the child process -------------------------------------------------------------------


class _Socket:
    """The child's end: blocking frames."""

    def __init__(self, fd: int):
        self.sock = socket.socket(fileno=fd)
        self.file = self.sock.makefile("rb")

    def send(self, kind: int, payload: bytes = b"") -> None:
        self.sock.sendmsg([HEADER.pack(len(payload), bytes([kind])), payload])

    def receive(self) -> tuple[int, bytes]:
        header = self.file.read(HEADER.size)
        if len(header) < HEADER.size:
            raise EOFError
        length, kind = HEADER.unpack(header)
        payload = self.file.read(length)
        if len(payload) < length:
            raise EOFError
        return kind[0], payload


class _Keep:
    """The child's Keeper: the run's record and input go to the run store every worker
    shares, saved here when it is a directory (then SAVED), or sent for the server to save
    (RECORD). The volumes stay nowhere: any worker recomputes them (app/run_volumes.py)."""

    def __init__(self, channel: _Socket, store: Any):
        self.channel = channel
        self.store = store

    def save(self, record: Any, pixels: np.ndarray, volumes: list[np.ndarray]) -> None:
        if self.store is None:
            self.channel.send(RECORD, json.dumps(record.dump()).encode())
        else:
            self.store.save(record.id, record.dump(), pixels)
            self.channel.send(SAVED)


def _load(config: dict[str, Any]) -> Registry:
    from app.models_dir import load_imported

    registry = Registry.load(config["models"])
    registry.models.update(load_imported(Path(config["models_dir"]), skip=config["models"]))
    return registry


def _open_store(runs: dict[str, Any] | None) -> Any:
    from app.runs import RunStore

    return None if runs is None else RunStore(Path(runs.pop("dir")), **runs)


def _compute(channel: _Socket, registry: Registry, keep: _Keep, job: dict, pixels: bytes) -> None:
    from app import stream
    from app.producer import FAILED_DETAIL, produce
    from app.record import RunRecord

    wire = stream.compressor(job["accept_encoding"])
    started = time.perf_counter() - job["elapsed_ms"] / 1000

    def emit(chunk: bytes) -> None:
        channel.send(CHUNK, chunk)

    try:
        served = registry.get(job["model"])
        array = np.frombuffer(pixels, np.uint8).reshape(served.network.input_shape)
        record = RunRecord.model_validate(job["record"])
        emit(wire(job["run_line"].encode()))
        produce(served, array, record, keep, started, job["encoding"], wire, emit)
    except Exception:
        channel.send(FAILED, traceback.format_exc().encode())
        channel.send(CHUNK, wire(stream.error_line(FAILED_DETAIL)) + wire.end())


def _serve(fd: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle
    from model.channels import weights_sha256

    channel = _Socket(fd)
    try:
        kind, payload = channel.receive()
        config = json.loads(payload)
        registry = _load(config)
        keep = _Keep(channel, _open_store(config["runs"]))
        hashes = {key: weights_sha256(served.network) for key, served in registry.models.items()}
    except EOFError:
        return
    except Exception:
        channel.send(FAILED, traceback.format_exc().encode())
        return
    channel.send(READY, json.dumps(hashes).encode())
    while True:
        try:
            _, job = channel.receive()
            _, pixels = channel.receive()
            _compute(channel, registry, keep, json.loads(job), pixels)
            channel.send(DONE)
        except (EOFError, OSError):
            return


if __name__ == "__main__":
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        _serve(int(sys.argv[1]))
