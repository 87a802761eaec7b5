"""GET /api/runs/{id}/attributions/{method}.json|.png: the maps against model/attributions.py
on the run's own input, the picture against the input it is drawn over, the cache, the
forward gate's limit, and every error answer."""

import io

import httpx
import numpy as np
import pytest
from PIL import Image

from app.api import attributions as route
from app.mapcache import MapCache
from model import attributions
from tests.api.networks import reference
from tests.api.test_runs import decode_png, make_run

METHODS = ["saliency", "smoothgrad", "integrated-gradients", "gradcam", "occlusion"]


@pytest.fixture
async def run(client: httpx.AsyncClient) -> tuple[str, list[dict]]:
    return await make_run(client)


async def input_of(client: httpx.AsyncClient, run_id: str) -> np.ndarray:
    response = await client.get(f"/api/runs/{run_id}/input.png?scale=1")
    return np.asarray(Image.open(io.BytesIO(response.content)))


@pytest.mark.parametrize(
    ("method", "query", "params"),
    [
        ("saliency", {}, {}),
        ("smoothgrad", {"samples": 4, "seed": 3}, {"samples": 4, "noise": 0.15, "seed": 3}),
        ("integrated-gradients", {"steps": 8}, {"steps": 8}),
        ("gradcam", {"layer": 9}, {"layer": 9}),
        ("occlusion", {"patch": 8, "stride": 8}, {"patch": 8, "stride": 8}),
    ],
)
async def test_maps_are_the_model_functions_on_the_runs_input(
    client: httpx.AsyncClient, run, method: str, query: dict, params: dict
) -> None:
    run_id, lines = run
    response = await client.get(f"/api/runs/{run_id}/attributions/{method}.json", params=query)
    assert response.status_code == 200, response.text
    body = response.json()
    net = reference("cifar10")
    x = net.preprocess((await input_of(client, run_id))[None])[0]
    top = lines[-1]["top"][0]
    expected = attributions.explain(net, x, method, top["index"], **params)
    assert body["method"] == method and body["run"] == run_id and body["model"] == "cifar10"
    assert body["target"] == top["index"] and body["class"] == top["class"]
    assert body["probability"] == pytest.approx(top["probability"], rel=1e-5)
    assert body["params"] == params
    values = np.array(body["values"])
    assert list(values.shape) == body["shape"] == list(expected.values.shape)
    assert np.allclose(values, expected.values, rtol=1e-5, atol=1e-7)
    lo, hi = body["range"]  # the colour bar: 99% of the magnitudes fit inside
    limit = np.quantile(np.abs(values), 0.99)
    assert hi == pytest.approx(limit) and lo in (0, pytest.approx(-limit))
    if method == "integrated-gradients":
        assert body["delta"] == pytest.approx(
            values.sum() - (body["score"] - body["baseline_score"]), abs=1e-4
        )
    if method == "gradcam":
        assert body["layer"] == 9 and body["layer_name"] == net.layers[9].name


async def test_target_and_defaults(client: httpx.AsyncClient, run) -> None:
    run_id, _ = run
    body = (await client.get(f"/api/runs/{run_id}/attributions/gradcam.json?target=7")).json()
    assert body["target"] == 7 and body["class"] == "horse"
    assert body["layer_name"] == "pool3" and body["shape"] == [4, 4]  # the default layer
    ig = (await client.get(f"/api/runs/{run_id}/attributions/integrated-gradients.json")).json()
    assert ig["params"] == {"steps": 32}
    occlusion = (await client.get(f"/api/runs/{run_id}/attributions/occlusion.json")).json()
    assert occlusion["params"] == {"patch": 8, "stride": 4}


async def test_png_is_the_map_over_the_input(client: httpx.AsyncClient, run) -> None:
    run_id, _ = run
    pixels = await input_of(client, run_id)
    base = f"/api/runs/{run_id}/attributions/saliency.png"
    clear = decode_png(await client.get(f"{base}?alpha=0&upscale=2"))
    assert np.array_equal(clear, pixels.repeat(2, axis=0).repeat(2, axis=1))  # nothing laid over
    response = await client.get(f"{base}?upscale=3")
    shown = decode_png(response)
    assert shown.shape == (96, 96, 3)
    lo, hi = (float(v) for v in response.headers["x-attribution-range"].split(","))
    assert lo == 0 and hi > 0
    # Opacity grows with the value: the strongest pixel is the most changed from the input.
    body = (await client.get(f"/api/runs/{run_id}/attributions/saliency.json")).json()
    values = np.array(body["values"])
    changed = np.abs(shown[1::3, 1::3].astype(int) - pixels).sum(axis=2)
    strongest = np.unravel_index(values.argmax(), values.shape)
    weakest = np.unravel_index(values.argmin(), values.shape)
    assert changed[strongest] > changed[weakest]
    default = decode_png(await client.get(f"/api/runs/{run_id}/attributions/gradcam.png"))
    assert default.shape == (256, 256, 3)


async def test_results_are_cached_per_run_and_parameters(client: httpx.AsyncClient, run) -> None:
    run_id, _ = run
    path = f"/api/runs/{run_id}/attributions/smoothgrad.json"
    first = (await client.get(path, params={"samples": 3})).json()
    again = (await client.get(path, params={"samples": 3, "steps": 9})).json()  # steps: not its
    other = (await client.get(path, params={"samples": 3, "seed": 1})).json()
    assert first["elapsed_ms"] > 0 and again["elapsed_ms"] == 0
    assert again["values"] == first["values"]
    assert other["elapsed_ms"] > 0 and other["values"] != first["values"]
    response = await client.get(path, params={"samples": 3})
    assert response.headers["cache-control"].startswith("private, max-age=")


async def test_busy_server_answers_503_but_cached_maps_still_come(
    client: httpx.AsyncClient, run, app
) -> None:
    run_id, _ = run
    cached = f"/api/runs/{run_id}/attributions/saliency.json"
    assert (await client.get(cached)).status_code == 200
    gate = app.state.forward_gate
    gate.active = gate.places
    try:
        busy = await client.get(f"/api/runs/{run_id}/attributions/gradcam.json")
        assert busy.status_code == 503
        assert busy.headers["retry-after"] == "1"
        assert "busy" in busy.json()["detail"]
        assert (await client.get(cached)).status_code == 200
    finally:
        gate.active = 0
    assert gate.active == 0
    assert (await client.get(f"/api/runs/{run_id}/attributions/gradcam.json")).status_code == 200
    assert gate.active == 0  # the place was given back


@pytest.mark.parametrize(
    ("path", "status", "sentence"),
    [
        ("lime.json", 404, "There is no attribution method 'lime'; the methods are saliency"),
        ("saliency.json?target=10", 404, "there is no class 10"),
        ("gradcam.json?layer=17", 404, "there is no layer 17"),
        ("gradcam.json?layer=15", 422, "layer 15 (fc1) is a fc layer"),
        ("gradcam.png?layer=16", 422, "layer 16 (softmax1) is a softmax layer"),
        ("integrated-gradients.json?steps=257", 422, "steps"),
        ("integrated-gradients.json?steps=0", 422, "steps"),
        ("smoothgrad.json?samples=65", 422, "samples"),
        ("smoothgrad.json?noise=2", 422, "noise"),
        ("occlusion.json?patch=33", 422, "at most 32 pixels, not 33"),
        ("saliency.json?target=-1", 422, "target"),
        ("saliency.png?alpha=1.5", 422, "alpha"),
        ("saliency.png?upscale=17", 422, "upscale"),
    ],
)
async def test_bad_requests_get_a_sentence(
    client: httpx.AsyncClient, run, path: str, status: int, sentence: str
) -> None:
    run_id, _ = run
    response = await client.get(f"/api/runs/{run_id}/attributions/{path}")
    assert response.status_code == status, response.text
    assert sentence in response.json()["detail"]


async def test_occlusion_positions_are_bounded(client: httpx.AsyncClient, run, monkeypatch):
    run_id, _ = run
    monkeypatch.setattr(route, "MAX_OCCLUSION_POSITIONS", 100)
    response = await client.get(f"/api/runs/{run_id}/attributions/occlusion.json?stride=2")
    assert response.status_code == 422
    assert "169 positions; the limit is 100: use a larger stride" in response.json()["detail"]


async def test_unknown_run_says_upload_again(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/api/runs/{'0' * 32}/attributions/saliency.json")
    assert response.status_code == 404
    assert "Upload the image again" in response.json()["detail"]


async def test_routes_are_in_the_docs(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    json_route = paths["/api/runs/{run_id}/attributions/{method}.json"]["get"]
    names = {p["name"] for p in json_route["parameters"]}
    assert {"target", "layer", "steps", "samples", "noise", "seed", "patch", "stride"} <= names
    assert "AttributionMap" in str(json_route["responses"]["200"])
    png_route = paths["/api/runs/{run_id}/attributions/{method}.png"]["get"]
    assert {"alpha", "upscale"} <= {p["name"] for p in png_route["parameters"]}
    assert set(json_route["responses"]) >= {"200", "404", "422", "503"}


def test_map_cache_is_bounded_by_count_and_bytes() -> None:
    cache = MapCache(max_entries=3, max_bytes=100)
    for key in "abc":
        cache.put(key, key.upper(), 10)
    assert cache.get("a") == "A"  # a is now the most recent
    cache.put("d", "D", 10)
    assert cache.get("b") is None and len(cache) == 3
    cache.put("e", "E", 85)  # 10 + 10 + 10 + 85 > 100: the oldest go until it fits
    assert cache.bytes <= 100 and cache.get("e") == "E" and cache.get("c") is None
    cache.put("huge", "H", 101)
    assert cache.get("huge") is None
    assert all(method in route.PARAMETERS for method in METHODS)
