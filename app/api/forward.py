"""POST /api/models/{id}/forward: push an uploaded image through a model, streaming every
layer's volume as NDJSON the moment it is computed (the lines are described in
app/stream.py)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Literal, NamedTuple

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from app import imaging, producer, stream
from app.api.models import served_model
from app.compute_pool import CHUNK, FAILED, RECORD, ComputePool, ComputeProcessDied
from app.decode_pool import DecodePool
from app.errors import error
from app.gate import ForwardGate, ForwardGateDep, GatedStreamingResponse, Place
from app.record import RunInput, RunRecord
from app.registry import RegistryDep, ServedModel
from app.run_volumes import RunVolumes
from app.runs import RunStore, RunStoreDep, new_run_id
from app.settings import SettingsDep
from app.store_check import refuse_if_unusable
from app.upload import read_file_field

router = APIRouter(prefix="/api/models", tags=["runs"])
VolumeEncoding = Annotated[
    Literal["uint8", "uint8-split", "uint8-predicted"],
    Query(
        description="How each layer's bytes are written (app/stream.py): base64; the "
        "byte-aligned split that compresses to half; or that split with ReLU and pool "
        "layers sent as their difference from the layer before (what the page asks for)."
    ),
]
log = logging.getLogger(__name__)

FIELD = "image"
UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": [FIELD],
                "properties": {
                    FIELD: {
                        "type": "string",
                        "format": "binary",
                        "description": "JPEG, PNG, GIF, WebP, BMP or TIFF.",
                    }
                },
            }
        }
    },
}
STREAM_EXAMPLE = (
    '{"type":"run","id":"3f2c...","model":"cifar10","trained":true,"classes":[...],'
    '"layer_count":17,"input":{"shape":[32,32,3],"encoding":"uint8","layout":"HWD",'
    '"data":"..."}}\n'
    '{"type":"layer","index":0,"name":"conv1","kind":"conv","shape":[32,32,32],"stats":{...},'
    '"encoding":"uint8","layout":"DHW","scale":{"min":-1.2,"max":2.3},"data":"...",'
    '"elapsed_ms":1.9}\n'
    '{"type":"scores","probabilities":[...],"top":[{"index":3,"class":"cat",'
    '"probability":0.61}],"elapsed_ms":14.2}\n'
)


@router.post(
    "/{model_id}/forward",
    response_class=StreamingResponse,
    openapi_extra={"requestBody": UPLOAD_BODY},
    responses={
        200: {
            "content": {stream.MEDIA_TYPE: {"example": STREAM_EXAMPLE}},
            "description": "One JSON object per line: the run, each layer in order, the scores.",
        },
        400: error("The upload was interrupted."),
        404: error("No such model."),
        408: error("The upload stopped arriving, trickled, or took too long."),
        413: error("The upload or the image is too large."),
        415: error("Not multipart/form-data, or not an image."),
        422: error("A truncated or corrupt image, or a malformed form."),
        503: error("Busy, or the run store is unusable; Retry-After says when to try again."),
    },
)
async def forward(
    model_id: str,
    request: Request,
    registry: RegistryDep,
    settings: SettingsDep,
    store: RunStoreDep,
    gate: ForwardGateDep,
    encoding: VolumeEncoding = "uint8",
) -> StreamingResponse:
    """Upload an image (multipart field `image`) and receive every layer's volume as it is
    computed. The run can be fetched again from /api/runs/{id} once its scores line arrived.
    With an Accept-Encoding that allows gzip, the lines come gzip'd, flushed line by line.
    """
    served = served_model(registry, model_id)
    refuse_if_unusable(store)
    # The body first, against the uploads' own budget: a slow or trickling upload holds no
    # forward place (app/upload.py bounds how long it may take).
    data = await read_file_field(
        request,
        FIELD,
        settings.max_upload_bytes,
        settings.upload_idle_seconds,
        total_seconds=settings.upload_seconds,
        min_rate=settings.upload_min_bytes_per_second,
        budget=request.app.state.upload_budget,
    )
    # A layer's elapsed_ms counts from here: the upload's time is the network's, not the model's.
    started = time.perf_counter()
    place = gate.admit()
    try:
        decoder: DecodePool = request.app.state.decode_pool
        try:
            pixels = await decoder.prepare(
                data,
                served.network.input_shape,
                digits=served.digits,
                max_pixels=settings.max_pixels,
                max_aspect=settings.max_aspect_ratio,
            )
        except imaging.ImageError as error:
            raise HTTPException(error.status, error.detail) from None
        del data
    except BaseException:
        place.release()
        raise
    accept_encoding = request.headers.get("accept-encoding")
    run = Run(
        served,
        pixels,
        new_record(served, pixels),
        Keep(store, request.app.state.run_volumes),
        gate,
        place,
        started,
        encoding,
        accept_encoding,
        stream.compressor(accept_encoding),
    )
    pool: ComputePool = request.app.state.compute_pool
    return GatedStreamingResponse(
        place,
        _run_in_child(pool, run) if pool.serves(served) else _run(run),
        media_type=stream.MEDIA_TYPE,
        headers={"X-Run-Id": run.record.id, "Cache-Control": "no-store", **run.wire.headers},
    )


def new_record(served: ServedModel, pixels: np.ndarray) -> RunRecord:
    """The record of a run about to start: its layers and scores are filled in as computed."""
    return RunRecord(
        id=new_run_id(),
        model=served.id,
        trained=served.trained,
        created=time.time(),
        classes=served.network.classes,
        input=RunInput(shape=list(pixels.shape)),
    )


class Keep(NamedTuple):
    """Where a finished run goes: its record and input to the store every worker shares,
    its volumes to this worker's memory (app/run_volumes.py)."""

    store: RunStore
    volumes: RunVolumes

    def save(self, record: RunRecord, pixels: np.ndarray, volumes: list[np.ndarray]) -> None:
        """The run, so that any worker can serve its layers; a run too large for this
        worker's memory is stored whole."""
        if self.volumes.too_large(volumes):
            self.store.save(record.id, record.dump_json(), pixels, volumes)
        else:
            self.volumes.keep(record.id, volumes)
            self.store.save(record.id, record.dump_json(), pixels)


@dataclass
class Run:
    """One admitted run: what it computes, where it is kept, how its lines travel."""

    served: ServedModel
    pixels: np.ndarray
    record: RunRecord
    keep: Keep
    gate: ForwardGate
    place: Place
    started: float  # time.perf_counter() when its upload had arrived
    encoding: str
    accept_encoding: str | None
    wire: stream.Gzip | stream.Plain


async def _run(run: Run) -> AsyncIterator[bytes]:
    """The NDJSON lines of one run, computed on the gate's threads. Holds a place at the
    gate until it ends, however it ends (finished, failed, or the client went away). The
    compressor `run.wire` is used by one thread at a time: here for the run line, then by
    the producer, then here again only after the producer has stopped."""
    served, record, wire = run.served, run.record, run.wire
    try:
        yield wire(stream.run_line(record, len(served.network.layers), run.pixels))
        produce = partial(
            producer.produce,
            served,
            run.pixels,
            record,
            run.keep,
            run.started,
            run.encoding,
            wire,
        )
        async for chunk in run.gate.stream(produce):
            yield chunk
    except Exception:
        log.exception("run %s on %s failed", record.id, served.id)
        yield wire(stream.error_line(producer.FAILED_DETAIL)) + wire.end()
    finally:
        run.place.release()


async def _run_in_child(pool: ComputePool, run: Run) -> AsyncIterator[bytes]:
    """The NDJSON lines of one run computed by a compute process (app/compute_pool.py),
    compressed there as `run.wire` would; this side keeps the run when its record arrives,
    before the scores line goes out. A run no child could start is computed on the
    gate's threads instead."""
    record, pixels = run.record, run.pixels
    job = {
        "model": run.served.id,
        "record": record.dump(),
        "accept_encoding": run.accept_encoding,
        "encoding": run.encoding,
        "run_line": stream.run_line(record, len(run.served.network.layers), pixels).decode(),
        "elapsed_ms": (time.perf_counter() - run.started) * 1000,
    }
    sent = False
    try:
        async for kind, payload in pool.run(job, pixels):
            if kind == CHUNK:
                sent = True
                yield payload
            elif kind == RECORD:
                await run.gate.run(run.keep.store.save, record.id, payload, pixels)
            elif kind == FAILED:
                log.error("run %s on %s failed:\n%s", record.id, run.served.id, payload.decode())
    except ComputeProcessDied as error:
        log.error("run %s on %s: its compute process failed (%s)", record.id, run.served.id, error)
        if not sent:
            async for chunk in _run(run):
                yield chunk
        elif isinstance(run.wire, stream.Plain):
            # A gzip stream was the child's: only a plain one can still say what happened.
            yield stream.error_line(producer.FAILED_DETAIL)
    finally:
        run.place.release()
