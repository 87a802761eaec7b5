"""POST /api/models/{id}/forward: push an uploaded image through a model, streaming every
layer's volume as NDJSON the moment it is computed (the lines are described in
app/stream.py)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from functools import partial

import numpy as np
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse

from app import imaging, stream
from app.api.models import served_model
from app.decode_pool import DecodePool
from app.errors import error
from app.gate import Emit, ForwardGate, ForwardGateDep, GatedStreamingResponse, Place
from app.registry import RegistryDep, ServedModel
from app.runs import RunStore, RunStoreDep, new_run_id
from app.settings import Settings, SettingsDep
from app.store_check import refuse_if_unusable
from app.upload import read_file_field

router = APIRouter(prefix="/api/models", tags=["runs"])
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
) -> StreamingResponse:
    """Upload an image (multipart field `image`) and receive every layer's volume as it is
    computed. The run can be fetched again from /api/runs/{id} once its scores line arrived.
    """
    started = time.perf_counter()
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
    place = gate.admit()
    try:
        decoder: DecodePool = request.app.state.decode_pool
        try:
            pixels = await gate.run(_prepare, decoder, data, served, settings)
        except imaging.ImageError as error:
            raise HTTPException(error.status, error.detail) from None
        del data
    except BaseException:
        place.release()
        raise
    run_id = new_run_id()
    return GatedStreamingResponse(
        place,
        _run(served, pixels, run_id, store, gate, started, place),
        media_type=stream.MEDIA_TYPE,
        headers={"X-Run-Id": run_id, "Cache-Control": "no-store"},
    )


def _prepare(
    decoder: DecodePool, data: bytes, served: ServedModel, settings: Settings
) -> np.ndarray:
    return decoder.prepare(
        data,
        served.network.input_shape,
        digits=served.digits,
        max_pixels=settings.max_pixels,
        max_aspect=settings.max_aspect_ratio,
    )


def _produce(
    served: ServedModel,
    pixels: np.ndarray,
    run_id: str,
    store: RunStore,
    started: float,
    emit: Emit,
) -> None:
    """Compute the layers, emitting each one's line as soon as it is ready; then save the
    run and emit the scores. Runs on a compute thread."""
    net = served.network
    volumes, layer_stats = [], []
    batches = net.forward_iter(net.preprocess(pixels[None]))
    for index, (layer, batch) in enumerate(batches):
        volume = batch[0]
        if not np.isfinite(volume).all():
            raise FloatingPointError(f"layer {layer.name} produced NaN or infinity")
        numbers = stream.stats(volume)
        volumes.append(volume)
        layer_stats.append(numbers)
        elapsed = (time.perf_counter() - started) * 1000
        emit(stream.layer_line(index, layer.name, layer.kind, volume, elapsed, numbers))
    probs = stream.probabilities(volumes[-1], net.layers[-1].kind == "softmax")
    best = stream.top(probs, net.classes)
    meta = {
        "id": run_id,
        "model": served.id,
        "trained": served.trained,
        "created": time.time(),
        "classes": net.classes,
        "input": {"shape": list(pixels.shape), "layout": "HWD"},
        "layers": [
            {
                "index": i,
                "name": layer.name,
                "kind": layer.kind,
                "shape": list(layer.output_shape),
                "stats": numbers,
            }
            for i, (layer, numbers) in enumerate(zip(net.layers, layer_stats, strict=True))
        ],
        "probabilities": [float(p) for p in probs],
        "top": best,
    }
    # Saved before the last line, so a client holding the scores can fetch any layer.
    store.save(run_id, meta, pixels, volumes)
    emit(stream.scores_line(probs, best, (time.perf_counter() - started) * 1000))


async def _run(
    served: ServedModel,
    pixels: np.ndarray,
    run_id: str,
    store: RunStore,
    gate: ForwardGate,
    started: float,
    place: Place,
) -> AsyncIterator[bytes]:
    """The NDJSON lines of one run. Holds a place at the gate until it ends, however it
    ends (finished, failed, or the client went away)."""
    try:
        net = served.network
        yield stream.run_line(
            run_id, served.id, served.trained, net.classes, len(net.layers), pixels
        )
        produce = partial(_produce, served, pixels, run_id, store, started)
        async for line in gate.stream(produce):
            yield line
    except Exception:
        log.exception("run %s on %s failed", run_id, served.id)
        yield stream.error_line(
            "The server could not finish this run; please upload the image again."
        )
    finally:
        place.release()
