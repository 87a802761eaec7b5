"""What computes a forward run's lines: the layers one by one, each line emitted (compressed
for the wire) as soon as it is ready, then the run is kept and the scores line emitted.

The forward route runs `produce` on a compute thread, or a compute process
(app/compute_pool.py) runs `produce_batch` for the runs queued for it and sends what each
emits back: the same bytes either way (inference.forward_batch gives an image of a batch the
bits it gets alone).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from app import inference, stream
from app.gate import Emit
from app.record import RunRecord
from app.registry import ServedModel
from model.layers import Layer

FAILED_DETAIL = "The server could not finish this run; please upload the image again."


class Keeper(Protocol):
    def save(self, record: RunRecord, pixels: np.ndarray, volumes: list[np.ndarray]) -> None:
        """Keep the finished run, so that a client holding its scores can fetch any layer."""


@dataclass
class Job:
    """One run of a batch: its input, its record (filled in as its layers are computed),
    where it is kept, and how its lines travel. `started` is the time.perf_counter() its
    layers' elapsed_ms count from. A job that fails is handed to `fail` with the error and
    computed no further; the others of its batch go on."""

    pixels: np.ndarray
    record: RunRecord
    keep: Keeper
    started: float
    encoding: str
    wire: stream.Gzip | stream.Plain
    emit: Emit
    fail: Callable[[Job, Exception], None]
    volumes: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lines = stream.LayerLines(self.encoding)

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000


def produce(
    served: ServedModel,
    pixels: np.ndarray,
    record: RunRecord,
    keep: Keeper,
    started: float,
    encoding: str,
    wire: stream.Gzip | stream.Plain,
    emit: Emit,
) -> None:
    """Compute the layers of `pixels`, emitting each one's line as soon as it is ready; then
    keep the run and emit the scores line and the end of the wire's stream. Raises what
    failed."""
    errors: list[Exception] = []
    job = Job(pixels, record, keep, started, encoding, wire, emit, lambda _, e: errors.append(e))
    produce_batch(served, [job])
    if errors:
        raise errors[0]


def produce_batch(
    served: ServedModel, jobs: list[Job], flush: Callable[[], None] = lambda: None
) -> None:
    """`produce` for several runs of one model through one forward of their batch: each
    layer's lines are emitted, then `flush()`ed together, as soon as the layer is computed
    (a line waits only for the other lines of its layer, a fraction of a millisecond each);
    then each run is kept and its scores line flushed, run after run."""
    net = served.network
    live = dict(enumerate(jobs))  # position in the batch -> job, while it has not failed
    try:
        for layer, batch in inference.forward_batch(net, np.stack([job.pixels for job in jobs])):
            for position, job in list(live.items()):
                try:
                    _emit_layer(job, layer, batch[position])
                except Exception as error:
                    del live[position]
                    job.fail(job, error)
            flush()
    except Exception as error:  # the forward itself: every run still going fails
        for job in live.values():
            job.fail(job, error)
        flush()
        return
    for job in live.values():
        try:
            inference.add_scores(job.record, *inference.scores(net, job.volumes[-1]))
            # Kept before the last line, so a client holding the scores can fetch any layer.
            job.keep.save(job.record, job.pixels, job.volumes)
            job.emit(job.wire(stream.scores_line(job.record, job.elapsed_ms())) + job.wire.end())
        except Exception as error:
            job.fail(job, error)
        flush()  # each run's scores as soon as it is kept, not after the others' saves


def _emit_layer(job: Job, layer: Layer, volume: np.ndarray) -> None:
    numbers = inference.checked_stats(layer, volume)
    inference.add_layer(job.record, layer, volume, numbers)
    job.volumes.append(volume)
    index = len(job.volumes) - 1
    line = job.lines(index, layer.name, layer.kind, volume, job.elapsed_ms(), numbers)
    job.emit(job.wire(line))
