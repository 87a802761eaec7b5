"""GET /api/runs/{id}...: a run again, from the store every worker shares: its metadata and
scores, its input, and any layer as PNG, exact JSON or a NumPy .npy file."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from app import render
from app.errors import error
from app.gate import ForwardGateDep
from app.picture_cache import PictureCacheDep, cached_picture
from app.record import RunRecord
from app.run_volumes import RunVolumes, RunVolumesDep
from app.runs import RunNotFound, RunStore, RunStoreDep, StoredRun

router = APIRouter(prefix="/api/runs", tags=["runs"])

PNG = {"content": {"image/png": {}}, "description": "A PNG picture."}
NPY = {"content": {"application/octet-stream": {}}, "description": "A NumPy .npy file."}
GONE = error("No such run (or it expired), layer or slice.")
TOO_BIG = error("Bad parameters, or the picture asked for is too large.")
BUSY = error("Too many pictures are being drawn; Retry-After says when to try again.")


UPSCALE = f"Pixels per neuron (repeated); at most {render.MAX_SIDE} per side in all."
Upscale = Annotated[int | None, Query(ge=1, le=render.MAX_UPSCALE, description=UPSCALE)]
# input.png's first name for upscale; still accepted, but `scale` means colour range elsewhere.
OldUpscale = Annotated[
    int | None,
    Query(ge=1, le=render.MAX_UPSCALE, deprecated=True, description="The same as upscale."),
]


class RunInfo(RunRecord):
    """The run's record, and until when it can be fetched."""

    expires: float = Field(description="Unix time after which it can no longer be fetched.")


class LayerValues(BaseModel):
    run: str
    index: int
    name: str
    kind: str
    shape: list[int] = Field(description="[H, W, D].")
    layout: Literal["HWD"]
    values: list[Any] = Field(description="values[row][col][depth], exact float32 values.")


def read_run(store: RunStore, run_id: str, read: Callable[[StoredRun], Any]) -> tuple[Any, float]:
    """read(run) and the run's expiry time; 404 with advice when the run is gone."""
    try:
        with store.open(run_id) as run:
            return read(run), run.expires_at
    except RunNotFound as gone:
        minutes = store.ttl_seconds / 60
        raise HTTPException(
            404,
            getattr(gone, "detail", None)
            or f"Run {run_id} is not here: it never existed or has expired (runs are kept "
            f"{minutes:g} minutes, the newest {store.max_runs}). Upload the image again.",
        ) from None


def layer_reader(
    run_id: str, index: int, volumes: RunVolumes
) -> Callable[[StoredRun], tuple[np.ndarray, dict]]:
    """For read_run: the layer's volume (from memory, or recomputed) and its record entry
    (404 past the last layer)."""

    def read(run: StoredRun) -> tuple[np.ndarray, dict]:
        _check_layer(run, run_id, index)
        return volumes.layer(run, index), run.meta["layers"][index]

    return read


def layer_shape_reader(run_id: str, index: int) -> Callable[[StoredRun], list[int]]:
    """For read_run: the layer's [H, W, D], without reading its volume."""

    def read(run: StoredRun) -> list[int]:
        _check_layer(run, run_id, index)
        return run.meta["layers"][index]["shape"]

    return read


def _check_layer(run: StoredRun, run_id: str, index: int) -> None:
    if not 0 <= index < run.layer_count:
        raise HTTPException(
            404, f"Run {run_id} has layers 0 to {run.layer_count - 1}; there is no layer {index}."
        )


def cache_headers(expires_at: float) -> dict[str, str]:
    # A run never changes, so a browser may keep what it fetched until the run expires.
    max_age = max(0, int(expires_at - time.time()))
    return {"Cache-Control": f"private, max-age={max_age}"}


@router.get("/{run_id}", responses={404: GONE})
def get_run(store: RunStoreDep, run_id: str, response: Response) -> RunInfo:
    """The run's model, layers (shapes and statistics) and scores."""
    meta, expires = read_run(store, run_id, lambda run: run.meta)
    response.headers.update(cache_headers(expires))
    return RunInfo(**meta, expires=expires)


@router.get(
    "/{run_id}/input.png",
    response_class=Response,
    responses={
        200: PNG,
        304: {"description": "Not modified (If-None-Match)."},
        404: GONE,
        503: BUSY,
    },
)
async def get_input_png(
    request: Request,
    store: RunStoreDep,
    gate: ForwardGateDep,
    cache: PictureCacheDep,
    run_id: str,
    upscale: Upscale = None,
    scale: OldUpscale = None,
) -> Response:
    """The preprocessed input: what the model saw, before normalisation."""
    _, expires = read_run(store, run_id, lambda run: None)
    size = upscale or scale

    def draw() -> bytes:
        pixels, _ = read_run(store, run_id, lambda run: run.pixels().copy())
        return render.pixels_png(pixels, size)

    key = f"run/{run_id}/input.png?upscale={size}"
    return await cached_picture(request, key, draw, gate, cache, cache_headers(expires))


@router.get(
    "/{run_id}/layers/{index}.png",
    response_class=Response,
    responses={
        200: PNG,
        304: {"description": "Not modified (If-None-Match)."},
        404: GONE,
        422: TOO_BIG,
        503: BUSY,
    },
)
async def get_layer_png(
    request: Request,
    store: RunStoreDep,
    volumes: RunVolumesDep,
    gate: ForwardGateDep,
    cache: PictureCacheDep,
    run_id: str,
    index: int,
    slice: Annotated[
        int | None, Query(ge=0, description="One depth slice; all of them if absent.")
    ] = None,
    colormap: Annotated[
        render.Colormap | None,
        Query(description="Default: viridis for non-negative volumes, coolwarm for signed."),
    ] = None,
    scale: Annotated[
        render.Scale,
        Query(description="Map colours over the whole layer's range or each slice's own."),
    ] = "layer",
    upscale: Upscale = None,
) -> Response:
    """The layer's volume as a picture: all depth slices as a labelled mosaic, or one."""
    shape, expires = read_run(store, run_id, layer_shape_reader(run_id, index))
    depth = shape[2]
    if slice is not None and slice >= depth:
        raise HTTPException(
            404, f"Layer {index} has depth slices 0 to {depth - 1}; there is no slice {slice}."
        )

    def draw() -> bytes:
        (volume, _), _ = read_run(store, run_id, layer_reader(run_id, index, volumes))
        try:
            return render.volume_png(
                volume, slice_index=slice, colormap=colormap, scale=scale, upscale=upscale
            )
        except render.RenderError as error:
            raise HTTPException(422, str(error)) from None

    key = (
        f"run/{run_id}/layers/{index}.png?slice={slice}&colormap={colormap}"
        f"&scale={scale}&upscale={upscale}"
    )
    return await cached_picture(request, key, draw, gate, cache, cache_headers(expires))


@router.get(
    "/{run_id}/layers/{index}.json",
    response_model=LayerValues,
    responses={304: {"description": "Not modified (If-None-Match)."}, 404: GONE, 503: BUSY},
)
async def get_layer_json(
    request: Request,
    store: RunStoreDep,
    volumes: RunVolumesDep,
    gate: ForwardGateDep,
    cache: PictureCacheDep,
    run_id: str,
    index: int,
) -> Response:
    """The layer's exact numbers: values[row][col][depth]."""
    _, expires = read_run(store, run_id, layer_shape_reader(run_id, index))

    def encode() -> bytes:
        (volume, info), _ = read_run(store, run_id, layer_reader(run_id, index, volumes))
        body = {
            "run": run_id,
            "index": index,
            "name": info["name"],
            "kind": info["kind"],
            "shape": list(volume.shape),
            "layout": "HWD",
            "values": volume.tolist(),
        }
        return json.dumps(body, separators=(",", ":")).encode()

    key = f"run/{run_id}/layers/{index}.json"
    return await cached_picture(
        request, key, encode, gate, cache, cache_headers(expires), media_type="application/json"
    )


@router.get(
    "/{run_id}/layers/{index}.npy",
    response_class=Response,
    responses={200: NPY, 404: GONE},
)
def get_layer_npy(
    store: RunStoreDep,
    volumes: RunVolumesDep,
    run_id: str,
    index: int,
    slice: Annotated[
        int | None,
        Query(ge=0, description="One depth slice, shape (H, W); the whole volume if absent."),
    ] = None,
) -> Response:
    """The layer's volume as a .npy file: float32, shape (H, W, D); np.load reads it. With
    `slice`, one depth slice (H, W): what the page's hover readout fetches, a D-th the bytes."""
    (volume, info), expires = read_run(store, run_id, layer_reader(run_id, index, volumes))
    depth = volume.shape[2]
    if slice is not None and slice >= depth:
        raise HTTPException(
            404, f"Layer {index} has depth slices 0 to {depth - 1}; there is no slice {slice}."
        )
    buffer = io.BytesIO()
    if slice is None:
        np.save(buffer, volume, allow_pickle=False)
        name = f"{run_id}-{index}-{info['name']}.npy"
    else:
        np.save(buffer, np.ascontiguousarray(volume[:, :, slice]), allow_pickle=False)
        name = f"{run_id}-{index}-{info['name']}-slice{slice}.npy"
    headers = {**cache_headers(expires), "Content-Disposition": f'attachment; filename="{name}"'}
    return Response(buffer.getvalue(), media_type="application/octet-stream", headers=headers)
