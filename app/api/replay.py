"""GET /api/runs/{id}/stream: a stored run again, as the same NDJSON lines the forward
route sent (app/stream.py), so a follower's page draws the presenter's run exactly, layer
by layer, with the drawing code it already has, whichever worker made the run."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse

from app import stream
from app.api.forward import VolumeEncoding
from app.errors import error
from app.record import RunRecord
from app.run_volumes import RunVolumes, RunVolumesDep
from app.runs import RunNotFound, RunStoreDep, StoredRun

router = APIRouter(prefix="/api/runs", tags=["runs"])


def _lines(run: StoredRun, encoding: str, volumes: RunVolumes) -> Iterator[bytes]:
    record = RunRecord.model_validate(run.meta)
    yield stream.run_line(record, run.layer_count, run.pixels())
    lines = stream.LayerLines(encoding)
    for layer in record.layers:
        volume = volumes.layer(run, layer.index)
        numbers = layer.stats.model_dump()
        yield lines(layer.index, layer.name, layer.kind, volume, 0.0, numbers)
    yield stream.scores_line(record, 0.0)


@router.get(
    "/{run_id}/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {stream.MEDIA_TYPE: {}},
            "description": "The run's NDJSON lines, as POST /api/models/{id}/forward sent them.",
        },
        404: error("No such run (or it expired)."),
    },
)
def replay_run(
    store: RunStoreDep,
    volumes: RunVolumesDep,
    run_id: str,
    request: Request,
    encoding: VolumeEncoding = "uint8",
) -> StreamingResponse:
    """A stored run again, as the forward route's stream (run, each layer, scores), gzip'd
    line by line for a client that accepts gzip."""
    wire = stream.compressor(request.headers.get("accept-encoding"))
    try:
        with store.open(run_id) as run:
            lines = [wire(line) for line in _lines(run, encoding, volumes)] + [wire.end()]
    except RunNotFound:
        raise HTTPException(
            404, f"Run {run_id} is not here: it never existed or has expired."
        ) from None
    return StreamingResponse(iter(lines), media_type=stream.MEDIA_TYPE, headers=wire.headers)
