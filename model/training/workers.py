"""The training step across the CPU's cores: one worker process per core.

Each worker holds its own copy of the network and computes one shard of the batch (loss,
gradients and scores) with a single-threaded BLAS; the shards' results are weighted by
their size, so the step equals net.loss_and_scores on the whole batch up to float rounding.

Processes, not threads: two threads each pushing half a batch ran the convolutions slower
than one thread alone, while two processes did not slow each other down (most likely the
thousands of NumPy calls in a step, each handing Python's GIL to the other thread and
back); BENCHMARKS.md has the figures. A step sends each worker the weights and its shard
and gets the gradients back, which costs little beside the step itself.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from model.network import Network
from model.training.parallel import default_workers

Result = tuple[float, dict[str, np.ndarray], np.ndarray]


class GradientWorkers:
    """Computes net.loss_and_scores(x, labels) as one shard per worker process.

    The processes start on the first step and last until close(); with one worker the step
    runs in this process, with BLAS free to use every core.
    """

    def __init__(self, workers: int | None = None):
        self.workers = workers or default_workers()
        self._connections: list[Connection] = []
        self._processes: list[subprocess.Popen] = []
        self._networks: list[str | None] = []  # which network each worker holds

    def loss_and_scores(
        self, net: Network, x: np.ndarray, labels: np.ndarray, smoothing: float = 0.0
    ) -> Result:
        if self.workers == 1:
            return net.loss_and_scores(x, labels, smoothing)
        self._start()
        bounds = np.linspace(0, len(x), self.workers + 1).astype(int)
        shards = [(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
        key = json.dumps({"spec": net.spec, "dtype": net.dtype.str}, sort_keys=True)
        state = net.state_dict()
        for worker, (a, b) in enumerate(shards):
            spec = None if self._networks[worker] == key else (net.spec, net.dtype.str)
            self._networks[worker] = key
            try:
                self._connections[worker].send((spec, state, x[a:b], labels[a:b], smoothing))
            except OSError:
                self._failed(worker)
        replies = [self._receive(worker) for worker in range(len(shards))]
        for worker, (status, payload) in enumerate(replies):
            if status == "error":
                self._networks[worker] = None  # it may hold half-loaded weights
                raise payload
        results = [payload for _, payload in replies]

        shares = [(b - a) / len(x) for a, b in shards]
        loss = sum(w * shard_loss for w, (shard_loss, _, _) in zip(shares, results, strict=True))
        grads = {
            name: sum(w * g[name] for w, (_, g, _) in zip(shares, results, strict=True))
            for name in results[0][1]
        }
        return float(loss), grads, np.concatenate([scores for _, _, scores in results])

    def _start(self) -> None:
        if self._processes:
            return
        # Plain `python -m model.training.workers` processes, not multiprocessing's: its spawn runs
        # the caller's main script again in every worker (a script without a __main__ guard
        # would start workers without end), and a fork copies locks held by other threads.
        # -P: this package, not a `model` folder that happens to be in the current directory.
        package_root = str(Path(__file__).resolve().parents[2])
        path = os.pathsep.join([package_root, *filter(None, [os.environ.get("PYTHONPATH")])])
        for _ in range(self.workers):
            ours, theirs = socket.socketpair()
            process = subprocess.Popen(
                [sys.executable, "-P", "-m", "model.training.workers", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                env={**os.environ, "PYTHONPATH": path},
            )
            theirs.close()
            self._connections.append(Connection(ours.detach()))
            self._processes.append(process)
            self._networks.append(None)

    def _receive(self, worker: int) -> tuple[str, Any]:
        """("ok", result) or ("error", the exception the worker raised)."""
        try:
            return self._connections[worker].recv()
        except (EOFError, OSError):
            self._failed(worker)

    def _failed(self, worker: int) -> NoReturn:
        """A worker is gone: stop the others (the next step starts afresh) and say so."""
        process = self._processes[worker]
        self.close()
        raise RuntimeError(
            f"training worker {worker} stopped unexpectedly (exit code {process.returncode});"
            " was it out of memory?"
        )

    def close(self) -> None:
        for connection in self._connections:
            try:
                connection.send(None)
                connection.close()
            except OSError:
                pass  # already gone
        for process in self._processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._connections, self._processes, self._networks = [], [], []

    def __enter__(self) -> GradientWorkers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _serve(connection: Connection) -> None:
    """A worker: build the network it is sent, then compute shards until told to stop (or
    until the trainer is gone and the connection ends)."""
    from threadpoolctl import threadpool_limits

    from model.training.malloc import keep_freed_buffers

    # Ctrl-C reaches the whole process group: the trainer decides, and closes its workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    keep_freed_buffers()  # this process only trains
    net: Network | None = None
    with threadpool_limits(1, user_api="blas"):
        while (message := _next_message(connection)) is not None:
            spec, state, x, labels, smoothing = message
            try:
                if spec is not None:
                    net = Network(spec[0], np.dtype(spec[1]))
                net.load_state_dict(state)
                reply: tuple[str, Any] = ("ok", net.loss_and_scores(x, labels, smoothing))
            except Exception as error:  # sent back, and raised where the step was asked for
                reply = ("error", error)
            try:
                connection.send(reply)
            except OSError:  # the trainer is gone (interrupted): nobody to answer
                return


def _next_message(connection: Connection) -> Any:
    try:
        return connection.recv()
    except EOFError:
        return None


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1])))
