"""POST /api/models/{id}/forward: push an uploaded image through a model, streaming every
layer's volume as NDJSON the moment it is computed (the lines are described in
app/stream.py)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator

import numpy as np
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse

from app import imaging, stream
from app.api.models import served_model
from app.gate import ForwardGate, ForwardGateDep
from app.registry import RegistryDep, ServedModel
from app.runs import RunStore, RunStoreDep, new_run_id
from app.settings import SettingsDep
from app.upload import read_file_field

router = APIRouter(prefix="/api/models", tags=["runs"])
log = logging.getLogger(__name__)

FIELD = "image"
ERROR = {"model": None}
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
        404: {"description": "No such model.", **ERROR},
        413: {"description": "The upload or the image is too large.", **ERROR},
        415: {"description": "Not multipart/form-data, or not an image.", **ERROR},
        422: {"description": "A truncated or corrupt image, or a malformed form.", **ERROR},
        503: {"description": "Busy; Retry-After says when to try again.", **ERROR},
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
    gate.enter()
    try:
        data = await read_file_field(request, FIELD, settings.max_upload_bytes)
        try:
            pixels = await gate.run(_prepare, data, served, settings.max_pixels)
        except imaging.ImageError as error:
            raise HTTPException(error.status, error.detail) from None
        del data
    except BaseException:
        gate.leave()
        raise
    run_id = new_run_id()
    return StreamingResponse(
        _run(served, pixels, run_id, store, gate, started),
        media_type=stream.MEDIA_TYPE,
        headers={"X-Run-Id": run_id, "Cache-Control": "no-store"},
    )


def _prepare(data: bytes, served: ServedModel, max_pixels: int) -> np.ndarray:
    return imaging.prepare(
        data, served.network.input_shape, digits=served.digits, max_pixels=max_pixels
    )


class _Forward:
    """One run's forward pass, advanced a layer at a time from worker threads."""

    def __init__(self, served: ServedModel, pixels: np.ndarray, started: float):
        self.served = served
        self.started = started
        self.volumes: list[np.ndarray] = []
        self.layer_stats: list[dict[str, float]] = []
        self._steps: Iterator | None = None
        self._input = pixels

    def next_line(self) -> bytes | None:
        """Compute the next layer and return its line; None after the last layer."""
        if self._steps is None:
            net = self.served.network
            self._steps = net.forward_iter(net.preprocess(self._input[None]))
        step = next(self._steps, None)
        if step is None:
            return None
        layer, batch = step
        volume = batch[0]
        if not np.isfinite(volume).all():
            raise FloatingPointError(f"layer {layer.name} produced NaN or infinity")
        layer_stats = stream.stats(volume)
        index = len(self.volumes)
        self.volumes.append(volume)
        self.layer_stats.append(layer_stats)
        elapsed = (time.perf_counter() - self.started) * 1000
        return stream.layer_line(index, layer.name, layer.kind, volume, elapsed, layer_stats)

    def meta(self, run_id: str, probs: np.ndarray, best: list[dict]) -> dict:
        net = self.served.network
        return {
            "id": run_id,
            "model": self.served.id,
            "trained": self.served.trained,
            "created": time.time(),
            "classes": net.classes,
            "input": {"shape": list(self._input.shape), "layout": "HWD"},
            "layers": [
                {
                    "index": i,
                    "name": layer.name,
                    "kind": layer.kind,
                    "shape": list(layer.output_shape),
                    "stats": layer_stats,
                }
                for i, (layer, layer_stats) in enumerate(
                    zip(net.layers, self.layer_stats, strict=True)
                )
            ],
            "probabilities": [float(p) for p in probs],
            "top": best,
        }


async def _run(
    served: ServedModel,
    pixels: np.ndarray,
    run_id: str,
    store: RunStore,
    gate: ForwardGate,
    started: float,
) -> AsyncIterator[bytes]:
    """The NDJSON lines of one run. Holds a place at the gate until it ends, however it
    ends (finished, failed, or the client went away)."""
    try:
        net = served.network
        yield stream.run_line(
            run_id, served.id, served.trained, net.classes, len(net.layers), pixels
        )
        run = _Forward(served, pixels, started)
        while (line := await gate.run(run.next_line)) is not None:
            yield line
        probs = stream.probabilities(run.volumes[-1], net.layers[-1].kind == "softmax")
        best = stream.top(probs, net.classes)
        # Saved before the last line, so a client holding the scores can fetch any layer.
        await gate.run(store.save, run_id, run.meta(run_id, probs, best), pixels, run.volumes)
        elapsed = (time.perf_counter() - started) * 1000
        yield stream.scores_line(probs, best, elapsed)
    except Exception:
        log.exception("run %s on %s failed", run_id, served.id)
        yield stream.error_line(
            "The server could not finish this run; please upload the image again."
        )
    finally:
        gate.leave()
