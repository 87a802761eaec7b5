"""A run's layer volumes: in memory for the newest runs, recomputed from the run's stored
input for the others.

A run is stored as its record and input pixels (app/runs.py), not its volumes: the forward
pass is deterministic (the same uint8 pixels through the same weights give the same float32
volumes, bit for bit), and recomputing a cifar10 run costs less CPU than writing its
megabyte of volumes to disk after every run and evicting it again. So the worker that
computed a run keeps its volumes in memory, the newest runs first, up to a byte budget; any
other worker, or the same one later, recomputes them with one forward pass when a layer is
asked for. A recomputed run is checked against the statistics its record kept: if they
differ (the model's weights changed since), the run counts as gone. A run too large to stay
in memory for long (over a quarter of the budget: a 224x224 imported network's) is stored
whole instead, volumes and all, since recomputing it for every layer asked for would cost
a slow forward each time.

    volumes = RunVolumes(registry, max_bytes=64 * MB)
    volumes.keep(run_id, [v0, v1, ...])    # as the forward route computes them
    volume = volumes.layer(run, 3)         # run: an open StoredRun; may compute
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Annotated

import numpy as np
from fastapi import Depends, Request

from app import inference
from app.registry import Registry, ServedModel, UnknownModel
from app.runs import RunNotFound, StoredRun

# How long a request waits for another one already recomputing the same run.
WAIT_SECONDS = 60.0


class RunNotRecomputable(RunNotFound):
    """The run is stored but this server cannot make its volumes again; `detail` says why."""

    def __init__(self, run_id: str, detail: str):
        super().__init__(run_id)
        self.detail = detail


class RunVolumes:
    def __init__(self, registry: Registry, max_bytes: int):
        self.registry = registry
        self.max_bytes = max_bytes
        self._runs: OrderedDict[str, list[np.ndarray]] = OrderedDict()  # oldest first
        self._bytes = 0
        self._computing: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self.recomputed = 0

    def too_large(self, volumes: list[np.ndarray]) -> bool:
        """Whether a run's volumes should be stored with it rather than held here."""
        return sum(volume.nbytes for volume in volumes) * 4 > self.max_bytes

    def too_large_for(self, served: ServedModel) -> bool:
        """Whether every run of this model is too large to be held here (`too_large`)."""
        return served.volume_bytes * 4 > self.max_bytes

    def keep(self, run_id: str, volumes: list[np.ndarray]) -> None:
        """Hold a run's volumes (they are not copied: nobody may change them), evicting the
        least recently used runs beyond the byte budget."""
        size = sum(volume.nbytes for volume in volumes)
        with self._lock:
            if run_id in self._runs:
                self._bytes -= sum(v.nbytes for v in self._runs.pop(run_id))
            if size > self.max_bytes:
                return
            self._runs[run_id] = volumes
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, old = self._runs.popitem(last=False)
                self._bytes -= sum(v.nbytes for v in old)

    def layer(self, run: StoredRun, index: int) -> np.ndarray:
        """Layer `index`'s volume (H, W, D) float32: from the run file if it holds it (runs
        written before volumes stopped being stored), from memory, or recomputed.
        IndexError outside the layers; RunNotFound if the run cannot be recomputed."""
        if not 0 <= index < run.layer_count:
            raise IndexError(f"layer {index} is outside 0..{run.layer_count - 1}")
        if run.has_volumes:
            return run.layer(index)
        return self.volumes(run)[index]

    def volumes(self, run: StoredRun) -> list[np.ndarray]:
        """Every layer's volume of the run, recomputed once however many ask at once."""
        run_id = run.meta["id"]
        while True:
            with self._lock:
                if (held := self._runs.get(run_id)) is not None:
                    self._runs.move_to_end(run_id)
                    return held
                waiting = self._computing.get(run_id)
                if waiting is None:
                    self._computing[run_id] = threading.Event()
                    break
            if not waiting.wait(WAIT_SECONDS):
                raise RunNotFound(run_id)
        try:
            volumes = self._recompute(run)
            self.keep(run_id, volumes)
            return volumes
        finally:
            with self._lock:
                self._computing.pop(run_id).set()

    def _recompute(self, run: StoredRun) -> list[np.ndarray]:
        run_id, model_id = run.meta["id"], run.meta["model"]
        try:
            net = self.registry.get(model_id).network
        except UnknownModel:
            detail = (
                f"Run {run_id} was made by model {model_id}, which this server no longer serves; "
                "upload the image again."
            )
            raise RunNotRecomputable(run_id, detail) from None
        changed = RunNotRecomputable(
            run_id,
            f"Run {run_id} cannot be shown again: model {model_id} has changed since it was made "
            "(other weights). Upload the image again.",
        )
        volumes = []
        for (_, volume, numbers), kept in zip(
            inference.layers(net, run.pixels()), run.meta["layers"], strict=False
        ):
            if numbers != kept["stats"]:
                raise changed
            volumes.append(volume)
        if len(volumes) != run.layer_count:
            raise changed
        self.recomputed += 1
        return volumes


async def get_run_volumes(request: Request) -> RunVolumes:
    return request.app.state.run_volumes


RunVolumesDep = Annotated[RunVolumes, Depends(get_run_volumes)]
