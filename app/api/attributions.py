"""GET /api/runs/{id}/attributions/{method}.json|.png: why the network chose a class.

The map is computed by model/attributions.py from the stored run's input, on the forward
gate's compute threads and under its admission limit (a busy server answers 503 with
Retry-After rather than queueing), then kept in a bounded cache per run and parameters, so
that the JSON, the picture and a second student clicking the same class cost nothing. The
picture is drawn as the other pictures are (app/picture_cache.py): on a compute thread, as
one of the gate's picture places (503 past them), kept in the picture cache, with an ETag.
Parameters are bounded so that one request holds a core for about a second at most on the
shipped models (BENCHMARKS.md has the times).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from app import heatmap, render
from app.api.runs import cache_headers, read_run
from app.errors import error
from app.gate import ForwardGateDep
from app.mapcache import MapCacheDep
from app.picture_cache import PictureCacheDep, cached_picture
from app.registry import RegistryDep
from app.runs import RunStoreDep
from model import attributions
from model.network import Network

router = APIRouter(prefix="/api/runs", tags=["attributions"])

# The methods and the query parameters each one reads (others are ignored).
PARAMETERS = attributions.PARAMETERS
# Bounds that keep one request near a second of one core on cifar10 (BENCHMARKS.md).
MAX_STEPS = 256
MAX_SAMPLES = 64
MAX_PATCH = 64
MAX_OCCLUSION_POSITIONS = 1024

PNG = {"content": {"image/png": {}}, "description": "The map over the input, as PNG."}
RESPONSES: dict[int | str, dict[str, Any]] = {
    404: error("No such run (or it expired), method, class or layer."),
    422: error("A parameter out of its bounds, or a layer Grad-CAM cannot use."),
    503: error("Busy; Retry-After says when to try again."),
}
METHOD_DOC = (
    "saliency (Simonyan et al. 2014), smoothgrad (Smilkov et al. 2017), integrated-gradients "
    "(Sundararajan et al. 2017), gradcam (Selvaraju et al. 2017) or occlusion (Zeiler and "
    "Fergus 2014)."
)


class AttributionMap(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    run: str
    model: str
    method: str
    target: int = Field(description="The class explained (its index).")
    class_: str = Field(alias="class", description="The class's name.")
    score: float = Field(description="The class's score (before the softmax) on the input.")
    probability: float = Field(description="The class's probability on the input.")
    shape: list[int] = Field(description="[H, W] of the map: the input's, or gradcam's layer's.")
    values: list[list[float]] = Field(description="values[row][col].")
    range: list[float] = Field(description="[lo, hi] the colours of the .png span.")
    params: dict[str, Any] = Field(description="The method's parameters, defaults filled in.")
    elapsed_ms: float = Field(description="Time to compute the map (0 when it was cached).")
    baseline_score: float | None = Field(
        None, description="integrated-gradients: the class's score on the baseline."
    )
    delta: float | None = Field(
        None,
        description="integrated-gradients: the completeness gap, sum(values) - (score - "
        "baseline_score); it shrinks as steps grow.",
    )
    layer: int | None = Field(None, description="gradcam: the layer's index.")
    layer_name: str | None = Field(None, description="gradcam: the layer's name.")


def map_params(
    target: Annotated[
        int | None, Query(ge=0, description="The class to explain; default: the top class.")
    ] = None,
    layer: Annotated[
        int | None,
        Query(
            ge=0,
            description="gradcam: a conv, relu or pool layer; default: the last one "
            "larger than 1x1 before the fc.",
        ),
    ] = None,
    steps: Annotated[
        int, Query(ge=1, le=MAX_STEPS, description="integrated-gradients: points on the path.")
    ] = 32,
    samples: Annotated[
        int, Query(ge=1, le=MAX_SAMPLES, description="smoothgrad: noisy copies averaged.")
    ] = 25,
    noise: Annotated[
        float,
        Query(
            ge=0,
            le=1,
            description="smoothgrad: the noise's deviation, a share of the input's range.",
        ),
    ] = 0.15,
    seed: Annotated[
        int, Query(ge=0, le=2**32 - 1, description="smoothgrad: the noise's random seed.")
    ] = 0,
    patch: Annotated[
        int, Query(ge=1, le=MAX_PATCH, description="occlusion: the grey square's side, pixels.")
    ] = 8,
    stride: Annotated[
        int, Query(ge=1, le=MAX_PATCH, description="occlusion: pixels between patches.")
    ] = 4,
) -> dict[str, Any]:
    return {
        "target": target,
        "layer": layer,
        "steps": steps,
        "samples": samples,
        "noise": noise,
        "seed": seed,
        "patch": patch,
        "stride": stride,
    }


Params = Annotated[dict[str, Any], Depends(map_params)]
Method = Annotated[str, Path(description=METHOD_DOC, examples=["saliency"])]


def _check(net: Network, method: str, query: dict[str, Any], top: int) -> tuple[int, dict]:
    """The target and the method's own parameters, checked: 404 or 422 with a sentence."""
    if method not in PARAMETERS:
        raise HTTPException(
            404,
            f"There is no attribution method {method!r}; the methods are {', '.join(PARAMETERS)}.",
        )
    target = top if query["target"] is None else query["target"]
    params = {name: query[name] for name in PARAMETERS[method]}
    try:
        attributions.check_target(net, target)
    except attributions.AttributionError as unknown:
        raise HTTPException(404, str(unknown)) from None
    if method == "gradcam":
        layer = params["layer"]
        # A layer that does not exist is a 404; one of the wrong kind (or none), a 422.
        status = 404 if layer is not None and layer >= len(net.layers) else 422
        try:
            if layer is None:
                params["layer"] = attributions.default_gradcam_layer(net)
            else:
                attributions.check_gradcam_layer(net, layer)
        except attributions.AttributionError as wrong:
            raise HTTPException(status, str(wrong)) from None
    if method == "occlusion":
        height, width, _ = net.input_shape
        if params["patch"] > min(height, width):
            raise HTTPException(
                422,
                f"The patch must fit the {height}x{width} input: at most {min(height, width)} "
                f"pixels, not {params['patch']}.",
            )
        count = len(attributions.patch_positions(height, params["patch"], params["stride"]))
        count *= len(attributions.patch_positions(width, params["patch"], params["stride"]))
        if count > MAX_OCCLUSION_POSITIONS:
            raise HTTPException(
                422,
                f"A patch of {params['patch']} pixels every {params['stride']} makes {count} "
                f"positions; the limit is {MAX_OCCLUSION_POSITIONS}: use a larger stride.",
            )
    return target, params


def _compute(net: Network, pixels: np.ndarray, method: str, target: int, params: dict) -> dict:
    started = time.perf_counter()
    x = net.preprocess(pixels[None])[0]
    result = attributions.explain(net, x, method, target, **params)
    return _body(result, net, params, (time.perf_counter() - started) * 1000)


def _body(result: attributions.Attribution, net: Network, params: dict, ms: float) -> dict:
    values = result.values
    body: dict[str, Any] = {
        "method": result.method,
        "target": result.target,
        "class": net.classes[result.target] if net.classes else str(result.target),
        "score": result.score,
        "probability": result.probability,
        "shape": list(values.shape),
        "values": values.tolist(),
        "range": list(heatmap.value_range(values)),
        "params": params,
        "elapsed_ms": round(ms, 2),
    }
    for name in ("baseline_score", "delta", "layer", "layer_name"):
        if name in result.extras:
            body[name] = result.extras[name]
    return body


async def _attribution(
    run_id: str, method: str, query: dict, store, registry, gate, cache
) -> tuple[dict, np.ndarray, float]:
    """The map's body (cached or computed), the run's input pixels and its expiry."""
    (meta, pixels), expires = await run_in_threadpool(
        read_run, store, run_id, lambda run: (run.meta, np.array(run.pixels()))
    )
    try:
        net = registry.get(meta["model"]).network
    except LookupError:
        raise HTTPException(
            404, f"Run {run_id} was made with {meta['model']}, which this server no longer has."
        ) from None
    top = int(np.argmax(meta["probabilities"]))
    target, params = _check(net, method, query, top)
    key = (run_id, method, target, tuple(sorted(params.items())))
    if (body := cache.get(key)) is not None:
        return {**body, "elapsed_ms": 0.0}, pixels, expires
    gate.enter()
    try:
        body = await gate.run(_compute, net, pixels, method, target, params)
    finally:
        gate.leave()
    body = {"run": run_id, "model": meta["model"], **body}
    cache.put(key, body, nbytes=len(body["values"]) * len(body["values"][0]) * 32 + 1024)
    return body, pixels, expires


@router.get(
    "/{run_id}/attributions/{method}.json", response_model=AttributionMap, responses=RESPONSES
)
async def get_attribution_json(
    run_id: str,
    method: Method,
    query: Params,
    store: RunStoreDep,
    registry: RegistryDep,
    gate: ForwardGateDep,
    cache: MapCacheDep,
) -> JSONResponse:
    """Why the run's network gave a class its score: one number per input pixel (for
    gradcam, per position of its layer), larger where the pixel mattered more."""
    body, _, expires = await _attribution(run_id, method, query, store, registry, gate, cache)
    return JSONResponse(body, headers=cache_headers(expires))


@router.get(
    "/{run_id}/attributions/{method}.png",
    response_class=Response,
    responses={200: PNG, **RESPONSES},
)
async def get_attribution_png(
    request: Request,
    run_id: str,
    method: Method,
    query: Params,
    store: RunStoreDep,
    registry: RegistryDep,
    gate: ForwardGateDep,
    cache: MapCacheDep,
    pictures: PictureCacheDep,
    alpha: Annotated[
        float, Query(ge=0, le=1, description="Opacity of the strongest colour over the input.")
    ] = heatmap.DEFAULT_ALPHA,
    upscale: Annotated[
        int | None,
        Query(
            ge=1,
            le=render.MAX_UPSCALE,
            description="Pixels per input pixel (default: "
            f"about {heatmap.DEFAULT_SIDE} pixels a side).",
        ),
    ] = None,
) -> Response:
    """The map over the network's input as a heat map: viridis for maps that cannot be
    negative, coolwarm (zero at the light centre) for signed ones; faint where the map is
    near zero. The header X-Attribution-Range gives the values at the colour bar's ends."""
    body, pixels, expires = await _attribution(run_id, method, query, store, registry, gate, cache)

    def draw() -> bytes:
        try:
            return heatmap.overlay_png(
                pixels, np.asarray(body["values"], np.float64), alpha, upscale
            )
        except render.RenderError as too_big:
            raise HTTPException(422, str(too_big)) from None

    params = "&".join(f"{k}={v}" for k, v in sorted(body["params"].items()))
    key = (
        f"run/{run_id}/attributions/{method}.png?target={body['target']}&{params}"
        f"&alpha={alpha}&upscale={upscale}"
    )
    lo, hi = body["range"]
    headers = {**cache_headers(expires), "X-Attribution-Range": f"{lo:.6g},{hi:.6g}"}
    return await cached_picture(request, key, draw, gate, pictures, headers)
