"""What a channel responds to: its top dataset patches and its feature visualisation.

    GET /api/models/{id}/channels                                     index status
    GET /api/models/{id}/layers/{i}/channels/{d}/examples             top patches (JSON)
    GET /api/models/{id}/layers/{i}/channels/{d}/examples/{rank}.png  one patch
    GET /api/models/{id}/layers/{i}/channels/{d}/visualization.json   (.png, /frames.png)
    GET /api/models/{id}/layers/{i}/channels/{d}/visualization/stream NDJSON, as it forms

A visualisation not made before is computed on a compute thread, holding one of the forward
gate's places (503 with Retry-After when none is free, as for uploads), once however many
ask for it at the same moment (the others wait for that one); once made it is a file,
served without the gate. Answers carry an ETag from the weights' hash (and settings),
so a browser revalidates instead of downloading again.
"""

from __future__ import annotations

import asyncio
import base64
import json
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from app import render
from app.api.models import served_model
from app.channels import ChannelError, ChannelViews, ChannelViewsDep, read_frames
from app.errors import error
from app.gate import Emit, ForwardGate, ForwardGateDep, GatedStreamingResponse, Place
from app.registry import RegistryDep, ServedModel
from model.channels import VisSettings

router = APIRouter(prefix="/api/models", tags=["channels"])

PNG = {"content": {"image/png": {}}, "description": "A PNG picture."}
NDJSON = "application/x-ndjson"
ERRORS = {
    404: error("No such model, layer, channel or example, or no index built yet."),
    409: error("The index was made for other weights: it must be rebuilt."),
    422: error("A layer with no channels to show (fc, softmax), or bad parameters."),
}
VIS_ERRORS = {**ERRORS, 503: error("Busy; Retry-After says when to try again.")}
CACHE = "public, max-age=300"
MAX_STEPS = 512

Steps = Annotated[int, Query(ge=1, le=MAX_STEPS, description="Adam steps of gradient ascent.")]
Seed = Annotated[
    int, Query(ge=0, le=2**31 - 1, description="Seed of the random start and transforms.")
]


class IndexInfo(BaseModel):
    status: str = Field(description="ok, stale (made for other weights) or missing.")
    detail: str = Field(description="The status as a sentence, with the command to rebuild.")
    top: int | None = None
    dataset: dict[str, Any] | None = None
    layers: list[int] = Field(default_factory=list, description="Indexed layer indices.")


class ChannelsInfo(BaseModel):
    model: str
    weights_sha256: str = Field(description="sha256 over the served weights' arrays.")
    index: IndexInfo
    visualization_settings: dict[str, Any]


class Example(BaseModel):
    rank: int = Field(description="0 is the largest activation.")
    path: str = Field(description="The image's path inside the dataset archive or folder.")
    label: str = Field(description="The image's class.")
    label_index: int
    row: int
    col: int
    value: float = Field(description="The channel's activation at (row, col) on that image.")
    image: str = Field(description="URL of the patch under the neuron's receptive field (PNG).")


class Examples(BaseModel):
    model: str
    layer: int
    channel: int
    patch_size: int
    examples: list[Example]


class Frames(BaseModel):
    url: str = Field(
        description="The frames side by side (PNG), the last being the image: every one made "
        "on request, a few of them for a precomputed picture."
    )
    steps: list[int] = Field(description="The step of each frame in the strip.")
    activations: list[float]


class VisualizationInfo(BaseModel):
    model: str
    layer: int
    channel: int
    activation: float = Field(description="The channel's mean activation on the image.")
    start_activation: float = Field(description="The same on the random start.")
    steps: int
    settings: dict[str, Any]
    weights_sha256: str
    image: str
    frames: Frames


def _views(served: ServedModel, views: ChannelViews, index: int, channel: int) -> None:
    try:
        views.check_channel(served, index, channel)
    except ChannelError as problem:
        raise HTTPException(problem.status, problem.detail) from None


def _call(function, *args):
    try:
        return function(*args)
    except ChannelError as problem:
        raise HTTPException(problem.status, problem.detail) from None


def _base(model_id: str, index: int, channel: int) -> str:
    return f"/api/models/{model_id}/layers/{index}/channels/{channel}"


def _not_modified(request: Request, etag: str) -> bool:
    return etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]


def _cached(request: Request, etag: str, body: bytes, media_type: str) -> Response:
    headers = {"ETag": etag, "Cache-Control": CACHE}
    if _not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


@router.get("/{model_id}/channels", responses={404: ERRORS[404]})
def channels_info(model_id: str, registry: RegistryDep, views: ChannelViewsDep) -> ChannelsInfo:
    """Whether the model's top-patch index is there and made for the served weights."""
    served = served_model(registry, model_id)
    status = views.index_status(served)
    document = status.document or {}
    return ChannelsInfo(
        model=served.id,
        weights_sha256=views.weights_sha256(served),
        index=IndexInfo(
            status=status.status,
            detail=status.detail,
            top=document.get("top"),
            dataset=document.get("dataset"),
            layers=[layer["index"] for layer in document.get("layers", [])],
        ),
        visualization_settings=vars(VisSettings()) | {"key": VisSettings().key()},
    )


@router.get("/{model_id}/layers/{index}/channels/{channel}/examples", responses=ERRORS)
def examples(
    model_id: str,
    index: int,
    channel: int,
    request: Request,
    registry: RegistryDep,
    views: ChannelViewsDep,
) -> Response:
    """The dataset positions where this channel fires most, largest first, each with the
    input patch its neuron sees (padded with the network's padding colour at the edges)."""
    served = served_model(registry, model_id)
    _views(served, views, index, channel)
    found = _call(views.examples, served, index, channel)
    layer = _call(views.layer_entry, served, index)
    base = _base(served.id, index, channel)
    body = Examples(
        model=served.id,
        layer=index,
        channel=channel,
        patch_size=layer["patch_size"],
        examples=[Example(**e, image=f"{base}/examples/{e['rank']}.png") for e in found],
    )
    etag = f'"{views.weights_sha256(served)[:16]}-{index}-{channel}-examples"'
    return _cached(request, etag, body.model_dump_json().encode(), "application/json")


@router.get(
    "/{model_id}/layers/{index}/channels/{channel}/examples/{rank}.png",
    response_class=Response,
    responses={200: PNG, **ERRORS},
)
def example_png(
    model_id: str,
    index: int,
    channel: int,
    rank: int,
    request: Request,
    registry: RegistryDep,
    views: ChannelViewsDep,
) -> Response:
    """One top patch: the input pixels under the neuron's receptive field."""
    served = served_model(registry, model_id)
    _views(served, views, index, channel)
    png = _call(views.patch_png, served, index, channel, rank)
    etag = f'"{views.weights_sha256(served)[:16]}-{index}-{channel}-{rank}"'
    return _cached(request, etag, png, "image/png")


async def _visualization(
    served: ServedModel, views: ChannelViews, gate: ForwardGate, index, channel, settings
):
    found = views.find_visualization(served, index, channel, settings)
    if found is not None:
        return found
    # Single flight: a class opening one channel at once computes it once, not once each.
    key = (served.id, views.weights_sha256(served), index, channel, settings)
    making = views.being_made.get(key)
    if making is None:
        making = asyncio.ensure_future(
            _make(served, views, gate.admit(), gate, index, channel, settings)
        )
        views.being_made[key] = making
        making.add_done_callback(lambda _: views.being_made.pop(key, None))
    # Shielded: a client that goes away does not cancel the work the others wait for.
    return await asyncio.shield(making)


async def _make(served, views: ChannelViews, place: Place, gate: ForwardGate, *args):
    try:
        return await gate.run(views.make_visualization, served, *args)
    finally:
        place.release()


def _info(served: ServedModel, index: int, channel: int, meta: dict, settings) -> dict:
    base = _base(served.id, index, channel)
    query = f"?steps={settings.steps}&seed={settings.seed}"
    return {
        **{k: meta[k] for k in ("activation", "start_activation", "steps", "settings")},
        "model": served.id,
        "layer": index,
        "channel": channel,
        "weights_sha256": meta["weights_sha256"],
        "image": f"{base}/visualization.png{query}",
        "frames": {**meta["frames"], "url": f"{base}/visualization/frames.png{query}"},
    }


@router.get(
    "/{model_id}/layers/{index}/channels/{channel}/visualization.json", responses=VIS_ERRORS
)
async def visualization_json(
    model_id: str,
    index: int,
    channel: int,
    request: Request,
    registry: RegistryDep,
    views: ChannelViewsDep,
    gate: ForwardGateDep,
    steps: Steps = VisSettings.steps,
    seed: Seed = VisSettings.seed,
) -> VisualizationInfo:
    """The image that excites this channel most, made by gradient ascent: its activation
    before and after, the settings, and its frames (an image every few steps)."""
    served = served_model(registry, model_id)
    _views(served, views, index, channel)
    settings = VisSettings(steps=steps, seed=seed)
    etag = views.etag(served, index, channel, settings)
    meta, _ = await _visualization(served, views, gate, index, channel, settings)
    body = VisualizationInfo(**_info(served, index, channel, meta, settings))
    return _cached(request, etag, body.model_dump_json().encode(), "application/json")


@router.get(
    "/{model_id}/layers/{index}/channels/{channel}/visualization.png",
    response_class=Response,
    responses={200: PNG, **VIS_ERRORS},
)
async def visualization_png(
    model_id: str,
    index: int,
    channel: int,
    request: Request,
    registry: RegistryDep,
    views: ChannelViewsDep,
    gate: ForwardGateDep,
    steps: Steps = VisSettings.steps,
    seed: Seed = VisSettings.seed,
) -> Response:
    """The visualisation itself, at the model's input size."""
    return await _png(model_id, index, channel, request, registry, views, gate, steps, seed, True)


@router.get(
    "/{model_id}/layers/{index}/channels/{channel}/visualization/frames.png",
    response_class=Response,
    responses={200: PNG, **VIS_ERRORS},
)
async def visualization_frames(
    model_id: str,
    index: int,
    channel: int,
    request: Request,
    registry: RegistryDep,
    views: ChannelViewsDep,
    gate: ForwardGateDep,
    steps: Steps = VisSettings.steps,
    seed: Seed = VisSettings.seed,
) -> Response:
    """The ascent's stored frames side by side (their steps in the .json), for a replay."""
    return await _png(model_id, index, channel, request, registry, views, gate, steps, seed, False)


async def _png(model_id, index, channel, request, registry, views, gate, steps, seed, last):
    served = served_model(registry, model_id)
    _views(served, views, index, channel)
    settings = VisSettings(steps=steps, seed=seed)
    etag = (
        views.etag(served, index, channel, settings)[:-1] + ("-image" if last else "-frames") + '"'
    )
    if _not_modified(request, etag):
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": CACHE})
    _, strip = await _visualization(served, views, gate, index, channel, settings)
    png = views.frame_png(strip) if last else strip.read_bytes()
    return _cached(request, etag, png, "image/png")


@router.get(
    "/{model_id}/layers/{index}/channels/{channel}/visualization/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {NDJSON: {}},
            "description": 'One JSON object per line: {"type": "frame", "step", "activation", '
            '"image": a PNG data URL} every few steps, then {"type": "done", ...} with what '
            "visualization.json says.",
        },
        **VIS_ERRORS,
    },
)
async def visualization_stream(
    model_id: str,
    index: int,
    channel: int,
    registry: RegistryDep,
    views: ChannelViewsDep,
    gate: ForwardGateDep,
    steps: Steps = VisSettings.steps,
    seed: Seed = VisSettings.seed,
) -> StreamingResponse:
    """Follow the ascent as it runs: a frame every few steps. A picture made before is
    replayed from its stored frames at once."""
    served = served_model(registry, model_id)
    _views(served, views, index, channel)
    settings = VisSettings(steps=steps, seed=seed)
    key = (served.id, views.weights_sha256(served), index, channel, settings)
    if key in views.being_made:  # being made for another request: replay it once made
        await _visualization(served, views, gate, index, channel, settings)
    found = views.find_visualization(served, index, channel, settings)
    place = gate.admit() if found is None else None
    produce = partial(_produce, served, views, index, channel, settings, found)
    stream = _stream(gate, produce)
    headers = {"Cache-Control": "no-store"}
    if place is None:
        return StreamingResponse(stream, media_type=NDJSON, headers=headers)
    return GatedStreamingResponse(place, stream, media_type=NDJSON, headers=headers)


def _frame_line(step: int, image, activation: float) -> bytes:
    pixels = image[:, :, 0] if image.shape[2] == 1 else image
    data = base64.b64encode(render.encode_png(pixels)).decode()
    line = {"type": "frame", "step": step, "activation": activation}
    return (json.dumps(line | {"image": f"data:image/png;base64,{data}"}) + "\n").encode()


def _produce(served, views: ChannelViews, index, channel, settings, found, emit: Emit) -> None:
    if found is None:
        meta, _ = views.make_visualization(
            served,
            index,
            channel,
            settings,
            on_frame=lambda step, image, value: emit(_frame_line(step, image, value)),
        )
    else:
        meta, strip = found
        frames = meta["frames"]
        images = read_frames(strip, len(frames["steps"]))
        for step, image, value in zip(frames["steps"], images, frames["activations"], strict=True):
            emit(_frame_line(step, image, value))
    done = {"type": "done", **_info(served, index, channel, meta, settings)}
    emit((json.dumps(done) + "\n").encode())


async def _stream(gate: ForwardGate, produce):
    try:
        async for line in gate.stream(produce):
            yield line
    except Exception:
        yield (json.dumps({"type": "error", "detail": "The visualisation failed."}) + "\n").encode()
