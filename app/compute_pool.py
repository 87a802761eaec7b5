"""Forward runs computed in child processes, one per core, so that one server process uses
every core; the runs queued when a child comes free go through one forward of their batch.

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
all started at the first run (about 60 MB and half a second of CPU each), each driven by a
task of the server's loop. Each loads the same models as the server (`models`, then the
imported ones in `models_dir`) and says the sha256 of each one's weights; a model whose
network the server no longer holds as loaded (replaced, or weights that differ) is computed
on the server's own threads instead, as is one whose volumes are too large to be recomputed
cheaply (those runs are stored whole, which needs the volumes in the server), and any run no
child could be started for.

Batches: a child that comes free takes the runs waiting for it, up to `batch` of one model
(fewer for models with large volumes, and a fair share when other children are free too:
nobody waits for a batch to fill). One forward of the batch computes every layer for all of
them at once (app/inference.py's forward_batch: each image gets the very bits it gets alone),
and each layer's lines, one per run, go out together the moment the layer is computed. Per
run that saves most of the per-layer calls and socket writes (BENCHMARKS.md, "The server
path, issue 21: batches").

Frames on the socket pair, both ways: 4 bytes of length (little-endian), a kind byte, a slot
byte (the run's place in its batch), the payload.

    server -> child: CONFIG json (once); per batch: BATCH json (a list of jobs), then a
                     PIXELS frame (uint8 H, W, D) for each slot
    child -> server: READY json {model: sha256}; per slot: CHUNK bytes for the wire (the
                     run line first) ..., SAVED (the run is in the store) or RECORD json (the
                     finished record, for the server to keep before it sends the next
                     CHUNK, the scores line), CHUNK, DONE; a run that fails sends FAILED
                     (the traceback, for the log), then a CHUNK with the error line and the
                     stream's end, then DONE. The batch is over when every slot said DONE.

A child that dies mid-batch ends its runs' responses where they are (their gzip streams were
the child's, so no error line can follow) and is replaced before the next batch.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import traceback
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.registry import Registry, ServedModel, weights_digest

CONFIG, READY, BATCH, PIXELS, CHUNK, RECORD, SAVED, FAILED, DONE = b"CRBPKESFD"
HEADER = struct.Struct("<IcB")  # payload length, kind, slot
# A new child imports NumPy and loads every model first; that is not a run's time.
START_SECONDS = 60.0
BATCH_RUNS = 8
# A batch's volumes together at most: a model with larger runs gets smaller batches.
BATCH_BYTES = 32 << 20


class ComputeProcessDied(RuntimeError):
    """The child computing a run exited (or stopped speaking the protocol) before its end."""


@dataclass(eq=False)
class _Pending:
    """A run waiting for, or being computed by, a child; its frames queue for its reader."""

    job: dict[str, Any]
    pixels: bytes
    frames: deque[tuple[int, bytes] | BaseException | None] = field(default_factory=deque)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    abandoned: bool = False  # its reader went away before a child took it
    ended: bool = False  # its last frame (None or an error) is queued

    def put(self, frame: tuple[int, bytes]) -> None:
        self.frames.append(frame)
        self.arrived.set()

    def end(self, last: BaseException | None = None) -> None:
        if not self.ended:
            self.ended = True
            self.frames.append(last)
            self.arrived.set()

    async def next(self) -> tuple[int, bytes] | BaseException | None:
        """The next frame; the CHUNKs queued one after another joined into one, so that a
        reader that fell behind sends what it owes in one write."""
        while not self.frames:
            self.arrived.clear()
            await self.arrived.wait()
        frame = self.frames.popleft()
        if isinstance(frame, tuple) and frame[0] == CHUNK:
            parts = [frame[1]]
            while self.frames and isinstance(self.frames[0], tuple) and self.frames[0][0] == CHUNK:
                parts.append(self.frames.popleft()[1])
            frame = (CHUNK, b"".join(parts))
        return frame


class ComputePool:
    """Up to `processes` children computing forward runs, shared by the event loop's runs."""

    def __init__(
        self,
        processes: int,
        models: tuple[str, ...],
        models_dir: Path,
        runs: dict[str, Any] | None = None,
        batch: int = BATCH_RUNS,
    ):
        """`runs`: the RunStore's directory ("dir") and budgets, for the children to save
        runs there themselves; None (a store in Redis): the server saves them. `batch`: the
        most runs one forward computes together (1: one at a time)."""
        self.processes = processes
        self.batch = batch
        self.config = {
            "models": list(models),
            "models_dir": str(models_dir),
            "runs": runs,
            "batch": batch,
        }
        # model id -> (the network the children hold too, its weights' sha256, batch limit)
        self._networks: dict[str, tuple[object, str, int]] = {}
        self._queue: deque[_Pending] = deque()
        self._work = asyncio.Event()  # set when a run is queued
        self._drivers: set[asyncio.Task] = set()
        self._idle = 0  # drivers waiting for work
        self._children: set[_Child] = set()
        self._closed = False
        self.started = 0  # children started so far (for tests and benchmarks)
        # The sizes of the last batches (for tests and benchmarks).
        self.batches: deque[int] = deque(maxlen=1000)

    def adopt(self, registry: Registry, too_large: Any = None) -> None:
        """Note the networks the server loaded: runs of these, and only while the server
        still holds them, go to the children. `too_large(served)`: runs stored whole."""
        for model_id, served in registry.models.items():
            if too_large is None or not too_large(served):
                limit = max(1, min(self.batch, BATCH_BYTES // max(served.volume_bytes, 1)))
                self._networks[model_id] = (served.network, weights_digest(served.network), limit)

    def serves(self, served: ServedModel) -> bool:
        """Whether a run of `served` is computed by a child."""
        known = self._networks.get(served.id)
        return self.processes > 0 and known is not None and known[0] is served.network

    async def run(
        self, job: dict[str, Any], pixels: np.ndarray
    ) -> AsyncIterator[tuple[int, bytes]]:
        """(kind, payload) for each CHUNK, RECORD, SAVED and FAILED frame of one run, in
        order (chunks queued one after another joined); ComputeProcessDied if its child dies
        first, or if no child can take it. The run's frames queue here, however slowly its
        reader takes them (a slow or stalled client holds its lines, a few hundred KB, not a
        child)."""
        if self._closed:
            raise ComputeProcessDied("the server is shutting down")
        pending = _Pending(job, np.ascontiguousarray(pixels, np.uint8).tobytes())
        self._queue.append(pending)
        self._work.set()
        while len(self._drivers) < self.processes:
            self._spawn_driver()
        try:
            while (item := await pending.next()) is not None:
                if isinstance(item, BaseException):
                    raise ComputeProcessDied(str(item))
                yield item
        finally:
            pending.abandoned = True

    # --- the drivers: one task per child --------------------------------------------------

    def _spawn_driver(self) -> None:
        task = asyncio.get_running_loop().create_task(self._drive())
        self._drivers.add(task)
        task.add_done_callback(self._drivers.discard)

    async def _drive(self) -> None:
        """Start a child at once, then give it batch after batch (a new child before the
        next batch if it died)."""
        child = await self._start_child()
        try:
            while child is not None and not self._closed:
                batch = await self._take()
                if not child.alive():
                    self._forget(child)
                    if (child := await self._start_child()) is None:
                        for pending in batch:
                            pending.end(ComputeProcessDied("no compute process could start"))
                        return
                if batch := self._usable(child, batch):
                    await self._compute(child, batch)
        finally:
            if child is not None and self._closed:
                self._forget(child)

    async def _start_child(self) -> _Child | None:
        """A started child; None if it could not start (then, if no other driver is left
        to compute them, the queued runs are told so: they go to the server's threads)."""
        child = _Child()
        self._children.add(child)
        self.started += 1
        try:
            await child.start(self.config)
            return child
        except Exception as error:
            self._forget(child)
            if len(self._drivers) <= 1:
                while self._queue:
                    self._queue.popleft().end(ComputeProcessDied(str(error)))
            return None

    async def _take(self) -> list[_Pending]:
        """The next batch: the runs of the first waiting run's model, in the order they came,
        up to its batch limit, and no more than a fair share while other children wait."""
        while True:
            while self._queue and self._queue[0].abandoned:
                self._queue.popleft()
            if self._queue:
                break
            self._work.clear()
            self._idle += 1
            try:
                await self._work.wait()
            finally:
                self._idle -= 1
        model = self._queue[0].job["model"]
        limit = self._networks[model][2] if model in self._networks else 1
        limit = min(limit, math.ceil(len(self._queue) / (self._idle + 1)))
        batch, rest = [], deque()
        while self._queue and len(batch) < limit:
            pending = self._queue.popleft()
            if pending.abandoned:
                continue
            (batch if pending.job["model"] == model else rest).append(pending)
        self._queue.extendleft(reversed(rest))
        return batch

    def _usable(self, child: _Child, batch: list[_Pending]) -> list[_Pending]:
        """The batch, if the child holds the model's weights the server does; otherwise its
        runs are told so (they go to the server's threads, as all of the model's from now)."""
        model = batch[0].job["model"] if batch else None
        known = self._networks.get(model)
        if known is not None and child.hashes.get(model) == known[1]:
            return batch
        self._networks.pop(model, None)
        for pending in batch:
            pending.end(ComputeProcessDied(f"the compute processes have other weights: {model}"))
        return []

    async def _compute(self, child: _Child, batch: list[_Pending]) -> None:
        """Send the child its batch and queue what it answers for each run, to its DONE."""
        self.batches.append(len(batch))
        try:
            child.send(BATCH, json.dumps([pending.job for pending in batch]).encode())
            for slot, pending in enumerate(batch):
                child.send(PIXELS, pending.pixels, slot)
            running = len(batch)
            while running:
                for kind, slot, payload in await child.receive():
                    pending = batch[slot]
                    if kind == DONE:
                        pending.end()
                        running -= 1
                    elif kind in (CHUNK, RECORD, SAVED, FAILED):
                        pending.put((kind, payload))
                    else:
                        raise ComputeProcessDied(f"the compute process sent a {kind!r} frame")
        except (ComputeProcessDied, OSError, IndexError) as error:
            child.stop()
            for pending in batch:
                pending.end(error)
        except BaseException as error:  # cancelled: the server is stopping
            child.stop()
            for pending in batch:
                pending.end(ComputeProcessDied(repr(error)))
            raise

    def _forget(self, child: _Child) -> None:
        child.stop()
        self._children.discard(child)

    def pids(self) -> list[int]:
        return [child.process.pid for child in self._children if child.alive()]

    async def close(self) -> None:
        self._closed = True
        for task in list(self._drivers):
            task.cancel()
        for child in list(self._children):
            child.stop()
        self._children.clear()
        while self._queue:
            self._queue.popleft().end(ComputeProcessDied("the server is shutting down"))


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
            [(kind, _, payload)] = await asyncio.wait_for(self.receive(), START_SECONDS)
        except (TimeoutError, ComputeProcessDied, OSError, ValueError) as error:
            self.stop()
            raise ComputeProcessDied(f"the compute process did not start ({error!r})") from None
        if kind != READY:
            self.stop()
            raise ComputeProcessDied(payload.decode(errors="replace")[-2000:])
        self.hashes = json.loads(payload)

    def alive(self) -> bool:
        return not self.dead and self.process is not None and self.process.poll() is None

    def send(self, kind: int, payload: bytes, slot: int = 0) -> None:
        """One frame to the child (a batch is a few tens of KB: the transport buffers it)."""
        self._frames.transport.writelines([HEADER.pack(len(payload), bytes([kind]), slot), payload])

    async def receive(self) -> list[tuple[int, int, bytes]]:
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
        self._frames: list[tuple[int, int, bytes]] = []
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        start = 0
        while len(self._buffer) - start >= HEADER.size:
            length, kind, slot = HEADER.unpack_from(self._buffer, start)
            end = start + HEADER.size + length
            if len(self._buffer) < end:
                break
            self._frames.append((kind[0], slot, bytes(self._buffer[start + HEADER.size : end])))
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

    async def receive(self) -> list[tuple[int, int, bytes]]:
        while not self._frames:
            if self._closed:
                raise ComputeProcessDied("the compute process closed its socket")
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        frames, self._frames = self._frames, []
        return frames


# --- the child process -------------------------------------------------------------------


class _Socket:
    """The child's end: blocking frames; those sent are queued, then go out together."""

    def __init__(self, fd: int):
        self.sock = socket.socket(fileno=fd)
        self.file = self.sock.makefile("rb")
        self._out: list[bytes] = []

    def queue(self, kind: int, slot: int, payload: bytes = b"") -> None:
        self._out += (HEADER.pack(len(payload), bytes([kind]), slot), payload)

    def flush(self) -> None:
        """Send every queued frame: one write for a layer's lines of a whole batch."""
        if self._out:
            self.sock.sendall(b"".join(self._out))
            self._out = []

    def send(self, kind: int, slot: int, payload: bytes = b"") -> None:
        self.queue(kind, slot, payload)
        self.flush()

    def receive(self) -> tuple[int, int, bytes]:
        header = self.file.read(HEADER.size)
        if len(header) < HEADER.size:
            raise EOFError
        length, kind, slot = HEADER.unpack(header)
        payload = self.file.read(length)
        if len(payload) < length:
            raise EOFError
        return kind[0], slot, payload


class _Keep:
    """A run's Keeper in the child: the run's record and input go to the run store every
    worker shares, saved here when it is a directory (then SAVED), or sent for the server to
    save (RECORD). The volumes stay nowhere: any worker recomputes them (app/run_volumes.py)."""

    def __init__(self, channel: _Socket, store: Any, slot: int):
        self.channel = channel
        self.store = store
        self.slot = slot

    def save(self, record: Any, pixels: np.ndarray, volumes: list[np.ndarray]) -> None:
        if self.store is None:
            # The server keeps it before it sends the scores line that follows.
            self.channel.queue(RECORD, self.slot, record.dump_json())
        else:
            self.store.save(record.id, record.dump_json(), pixels)
            self.channel.queue(SAVED, self.slot)


def _load(config: dict[str, Any]) -> Registry:
    from app.models_dir import load_imported

    registry = Registry.load(config["models"])
    registry.models.update(load_imported(Path(config["models_dir"]), skip=config["models"]))
    return registry


def _open_store(runs: dict[str, Any] | None) -> Any:
    from app.runs import RunStore

    return None if runs is None else RunStore(Path(runs.pop("dir")), **runs)


class _Runner:
    """Computes the child's batches: the jobs that can start go through one forward per
    model (or one by one, for a model whose batched forward is not exact here)."""

    def __init__(self, channel: _Socket, registry: Registry, store: Any, batch: int = BATCH_RUNS):
        self.channel = channel
        self.registry = registry
        self.store = store
        self.batch = batch  # the most runs a batch can hold: the check covers each place
        self._exact: dict[str, bool] = {}

    def compute(self, jobs: list[dict[str, Any]], pixels: list[bytes]) -> None:
        from app import stream
        from app.producer import Job, produce_batch
        from app.record import RunRecord

        groups: dict[str, tuple[ServedModel, list[Job]]] = {}
        for slot, (job, data) in enumerate(zip(jobs, pixels, strict=True)):
            wire = stream.compressor(job["accept_encoding"])
            try:
                served = self.registry.get(job["model"])
                array = np.frombuffer(data, np.uint8).reshape(served.network.input_shape)
                record = RunRecord.model_validate(job["record"])
            except Exception as error:
                self._fail(slot, wire, error)
                continue
            self.channel.queue(CHUNK, slot, wire(job["run_line"].encode()))
            started = time.perf_counter() - job["elapsed_ms"] / 1000
            emit = self._emitter(slot)
            keep = _Keep(self.channel, self.store, slot)
            fail = self._failer(slot)
            computed = Job(array, record, keep, started, job["encoding"], wire, emit, fail)
            groups.setdefault(served.id, (served, []))[1].append(computed)
        self.channel.flush()  # the run lines, before any layer is computed
        for served, group in groups.values():
            if len(group) == 1 or self._batch_exact(served):
                produce_batch(served, group, self.channel.flush)
            else:
                for one in group:
                    produce_batch(served, [one], self.channel.flush)
        for slot in range(len(jobs)):
            self.channel.queue(DONE, slot)
        self.channel.flush()

    def _emitter(self, slot: int) -> Any:
        return lambda chunk: self.channel.queue(CHUNK, slot, chunk)

    def _failer(self, slot: int) -> Any:
        return lambda job, error: self._fail(slot, job.wire, error)

    def _fail(self, slot: int, wire: Any, error: BaseException) -> None:
        from app import stream
        from app.producer import FAILED_DETAIL

        trace = "".join(traceback.format_exception(error))
        self.channel.queue(FAILED, slot, trace.encode())
        self.channel.queue(CHUNK, slot, wire(stream.error_line(FAILED_DETAIL)) + wire.end())

    def _batch_exact(self, served: ServedModel) -> bool:
        """Whether a batched forward gives each image here the bits it gets alone (checked
        once per model, on random images filling every place of a batch: it depends on the
        layers and on the BLAS)."""
        if served.id not in self._exact:
            from app import inference

            net = served.network
            shape = (max(2, self.batch), *net.input_shape)
            pixels = np.random.default_rng(0).integers(0, 256, shape).astype(np.uint8)
            batched = [volumes for _, volumes in inference.forward_batch(net, pixels)]
            alone = [net.forward(net.preprocess(pixels[i : i + 1])) for i in range(len(pixels))]
            self._exact[served.id] = all(
                np.array_equal(batched[layer][i], alone[i][layer][0])
                for i in range(len(pixels))
                for layer in range(len(batched))
            )
            if not self._exact[served.id]:  # slower, not wrong: the operator should know
                print(
                    f"convscope compute process {os.getpid()}: a batch of {served.id} runs is "
                    "not bit for bit their runs alone with this BLAS; they go one by one",
                    file=sys.stderr,
                    flush=True,
                )
        return self._exact[served.id]


def _serve(fd: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle
    from model.channels import weights_sha256

    channel = _Socket(fd)
    try:
        kind, _, payload = channel.receive()
        config = json.loads(payload)
        registry = _load(config)
        runner = _Runner(channel, registry, _open_store(config["runs"]), config["batch"])
        hashes = {key: weights_sha256(served.network) for key, served in registry.models.items()}
    except EOFError:
        return
    except Exception:
        channel.send(FAILED, 0, traceback.format_exc().encode())
        return
    channel.send(READY, 0, json.dumps(hashes).encode())
    while True:
        try:
            _, _, batch = channel.receive()
            jobs = json.loads(batch)
            runner.compute(jobs, [channel.receive()[2] for _ in jobs])
        except (EOFError, OSError):
            return


if __name__ == "__main__":
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        _serve(int(sys.argv[1]))
