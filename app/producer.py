"""What computes a forward run's lines: the layers one by one, each line emitted (compressed
for the wire) as soon as it is ready, then the run is kept and the scores line emitted.

The forward route runs `produce` on a compute thread, or the compute process
(app/compute_pool.py) runs it and sends what it emits back: the same bytes either way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import numpy as np

from app import inference, stream
from app.record import RunRecord
from app.registry import ServedModel

Emit = Callable[[bytes], None]
FAILED_DETAIL = "The server could not finish this run; please upload the image again."


class Keeper(Protocol):
    def save(self, record: RunRecord, pixels: np.ndarray, volumes: list[np.ndarray]) -> None:
        """Keep the finished run, so that a client holding its scores can fetch any layer."""


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
    keep the run and emit the scores line and the end of the wire's stream. `started` is the
    time.perf_counter() a layer's elapsed_ms counts from."""
    net = served.network
    volumes = []
    lines = stream.LayerLines(encoding)
    for layer, volume, numbers in inference.layers(net, pixels):
        inference.add_layer(record, layer, volume, numbers)
        volumes.append(volume)
        elapsed = (time.perf_counter() - started) * 1000
        index = len(volumes) - 1
        emit(wire(lines(index, layer.name, layer.kind, volume, elapsed, numbers)))
    inference.add_scores(record, *inference.scores(net, volumes[-1]))
    # Kept before the last line, so a client holding the scores can fetch any layer.
    keep.save(record, pixels, volumes)
    emit(wire(stream.scores_line(record, (time.perf_counter() - started) * 1000)) + wire.end())
