"""GET /api/models: the models, their layers; and the weights (filters) of a layer."""

from __future__ import annotations

import io
import json
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from app import render
from app.errors import error
from app.gate import ForwardGateDep
from app.picture_cache import PictureCacheDep, cached_picture, digest
from app.registry import RegistryDep, ServedModel

router = APIRouter(prefix="/api/models", tags=["models"])

PNG = {"content": {"image/png": {}}, "description": "A PNG picture."}
NPY = {"content": {"application/octet-stream": {}}, "description": "A NumPy .npy file."}
NOT_FOUND = error("No such model or layer.")
CACHE = {"Cache-Control": "public, max-age=300"}


class ReceptiveField(BaseModel):
    size: int = Field(description="Side of the square of input pixels one neuron sees.")
    jump: int = Field(description="Input pixels between neighbouring neurons.")
    start: float = Field(description="Input pixel that neuron (0, 0) is centred on.")


class LayerInfo(BaseModel):
    """One layer; kind-specific options (filters, size, stride, pad, units) come too."""

    model_config = ConfigDict(extra="allow")

    index: int
    name: str
    kind: str = Field(
        description="conv, relu, pool, fc or softmax; imported models also conv2d, maxpool, "
        "avgpool, gap, batchnorm, leakyrelu, sigmoid, tanh, flatten, logsoftmax."
    )
    shape: list[int] = Field(description="Output volume [H, W, D].")
    param_count: int
    receptive_field: ReceptiveField
    summary: str = Field(description="The layer in CS231n notation, e.g. CONV 3x3x32 -> 32x32x32.")


class EpochInfo(BaseModel):
    epoch: int
    loss: float = Field(description="Mean training loss over the epoch.")
    train_accuracy: float
    test_accuracy: float


class TrainingInfo(BaseModel):
    command: str | None = Field(description="The convscope train command that made the weights.")
    dataset: str | None = Field(description="The dataset file's name.")
    epochs: int | None
    history: list[EpochInfo] = Field(description="Loss and accuracies after each epoch.")


class ModelSource(BaseModel):
    """Where an imported model came from (`convscope import`)."""

    model_config = ConfigDict(extra="allow")

    file: str = Field(description="The ONNX file's name.")
    sha256: str = Field(description="The ONNX file's SHA-256.")
    producer: str = Field(description="The program that wrote it, e.g. pytorch 2.3.0.")
    opset: int | None = Field(description="Its ONNX opset version.")
    imported: str = Field(description="When it was imported (UTC, ISO 8601).")


class ModelInfo(BaseModel):
    id: str
    name: str
    description: str
    tagline: str = Field(description="One line on what the model is.")
    trained: bool = Field(description="False while the model's trained weights are missing.")
    training: TrainingInfo | None = Field(
        description="How the weights were trained (from the model card); null if untrained."
    )
    test_accuracy: float | None = Field(
        description="Accuracy on a test split; null while not measured (`convscope eval`)."
    )
    input: list[int] = Field(description="Input volume [H, W, D].")
    input_style: str = Field(
        "photo",
        description="How uploads become inputs: photo (centre crop, resize) or digits "
        "(MNIST-like: grey, light on dark, centred by mass).",
    )
    classes: list[str]
    normalization: dict[str, list[float]]
    source: ModelSource | None = Field(
        None, description="For an imported model, its ONNX file; null for a shipped one."
    )
    layers: list[LayerInfo]


class ModelList(BaseModel):
    models: list[ModelInfo]


class Weights(BaseModel):
    model: str
    index: int
    name: str
    kind: str
    layout: str = Field(description="FCKK (conv: filters, channels, height, width) or OI (fc).")
    shape: list[int]
    weight: list[Any] = Field(description="Nested lists in the layout above (PyTorch's).")
    bias: list[float]


def served_model(registry: RegistryDep, model_id: str) -> ServedModel:
    try:
        return registry.get(model_id)
    except LookupError as error:
        raise HTTPException(404, str(error)) from None


def _layer_with_weights(served: ServedModel, index: int):
    layers = served.network.layers
    if not 0 <= index < len(layers):
        raise HTTPException(
            404, f"Model {served.id} has layers 0 to {len(layers) - 1}; there is no layer {index}."
        )
    layer = layers[index]
    if "weight" not in layer.params or layer.params["weight"].ndim not in (2, 4):
        raise HTTPException(
            404,
            f"Layer {index} ({layer.name}) is a {layer.kind} layer and has no weights; "
            "only conv and fc layers do.",
        )
    return layer


@router.get("")
def list_models(registry: RegistryDep) -> ModelList:
    """Every model this server runs: classes, input size and each layer's shape, parameter
    count and receptive field."""
    return ModelList(models=[ModelInfo(**m.summary()) for m in registry.models.values()])


@router.get("/{model_id}", responses={404: NOT_FOUND})
def get_model(registry: RegistryDep, model_id: str) -> ModelInfo:
    return ModelInfo(**served_model(registry, model_id).summary())


NOT_MODIFIED = {"description": "Not modified (If-None-Match)."}
BUSY = error("Too many pictures are being drawn; Retry-After says when to try again.")


def _weights_key(served: ServedModel, index: int, what: str) -> str:
    # The weights' digest, not only the model's name: new weights are a new picture.
    layer = served.network.layers[index]
    weights = digest(np.ascontiguousarray(layer.params["weight"]).data)
    return f"model/{served.id}/layers/{index}/{what}/{weights}"


@router.get(
    "/{model_id}/layers/{index}/weights",
    response_model=Weights,
    responses={304: NOT_MODIFIED, 404: NOT_FOUND, 503: BUSY},
)
async def get_weights(
    request: Request,
    registry: RegistryDep,
    gate: ForwardGateDep,
    cache: PictureCacheDep,
    model_id: str,
    index: int,
) -> Response:
    """The filters of a conv or fc layer, exact, in PyTorch's layout."""
    served = served_model(registry, model_id)
    layer = _layer_with_weights(served, index)

    def encode() -> bytes:
        weight = layer.params["weight"]
        body = {
            "model": served.id,
            "index": index,
            "name": layer.name,
            "kind": layer.kind,
            "layout": "FCKK" if weight.ndim == 4 else "OI",
            "shape": list(weight.shape),
            "weight": weight.tolist(),
            "bias": layer.params["bias"].tolist(),
        }
        return json.dumps(body, separators=(",", ":")).encode()

    key = _weights_key(served, index, "weights.json")
    return await cached_picture(
        request, key, encode, gate, cache, CACHE, media_type="application/json"
    )


@router.get(
    "/{model_id}/layers/{index}/weights.png",
    response_class=Response,
    responses={
        200: PNG,
        304: NOT_MODIFIED,
        404: NOT_FOUND,
        422: error("Upscale out of bounds."),
        503: BUSY,
    },
)
async def get_weights_png(
    request: Request,
    registry: RegistryDep,
    gate: ForwardGateDep,
    cache: PictureCacheDep,
    model_id: str,
    index: int,
    upscale: Annotated[int | None, Query(ge=1, le=render.MAX_UPSCALE)] = None,
) -> Response:
    """The filters as a picture: colour tiles for a first layer over RGB, otherwise one row
    per filter (fc: per output) and one tile per input depth slice, blue < 0 < red."""
    served = served_model(registry, model_id)
    layer = _layer_with_weights(served, index)

    def draw() -> bytes:
        weight = layer.params["weight"]
        if weight.ndim == 2:  # fc (out, in): `in` is the input volume flattened as (D, H, W)
            h, w, d = layer.input_shape
            weight = weight.reshape(-1, d, h, w)
        try:
            return render.weights_png(np.asarray(weight), upscale)
        except render.RenderError as error:
            raise HTTPException(422, str(error)) from None

    key = _weights_key(served, index, f"weights.png?upscale={upscale}")
    return await cached_picture(request, key, draw, gate, cache, CACHE)


@router.get(
    "/{model_id}/layers/{index}/weights.npy",
    response_class=Response,
    responses={200: NPY, 304: NOT_MODIFIED, 404: NOT_FOUND, 503: BUSY},
)
async def get_weights_npy(
    request: Request,
    registry: RegistryDep,
    gate: ForwardGateDep,
    cache: PictureCacheDep,
    model_id: str,
    index: int,
    filter: Annotated[
        int | None,
        Query(ge=0, description="One filter (fc: one output's row); all of them if absent."),
    ] = None,
) -> Response:
    """The weights as float32 .npy in PyTorch's layout: conv (F, C, KH, KW), fc (out, in);
    with `filter`, one of them, (C, KH, KW) or (in,). The page draws a deep layer's filters
    one at a time from these: a filter of conv6 is 4.6 KB, the layer 590 KB."""
    served = served_model(registry, model_id)
    layer = _layer_with_weights(served, index)
    count = layer.params["weight"].shape[0]
    if filter is not None and filter >= count:
        raise HTTPException(
            404, f"Layer {index} ({layer.name}) has filters 0 to {count - 1}; there is no {filter}."
        )

    def encode() -> bytes:
        weight = np.asarray(layer.params["weight"], np.float32)
        buffer = io.BytesIO()
        np.save(buffer, weight if filter is None else weight[filter], allow_pickle=False)
        return buffer.getvalue()

    key = _weights_key(served, index, f"weights.npy?filter={filter}")
    return await cached_picture(
        request, key, encode, gate, cache, CACHE, media_type="application/octet-stream"
    )
