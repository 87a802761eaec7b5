"""GET /api/runs/{id}...: a run's metadata, its input, and any layer as PNG, JSON or .npy."""

import base64
import io
import json
import os
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from app import render
from app.errors import ROUTING_SENTENCES
from app.main import create_app
from app.settings import Settings
from tests.api.networks import reference
from tests.images import photo, png


async def make_run(client: httpx.AsyncClient, seed: int = 0) -> tuple[str, list[dict]]:
    files = {"image": ("a.png", png(photo(40, 40, seed=seed)), "image/png")}
    response = await client.post("/api/models/cifar10/forward", files=files)
    assert response.status_code == 200
    lines = [json.loads(line) for line in response.text.splitlines()]
    return lines[0]["id"], lines


def decode_png(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(response.content)))


@pytest.fixture
async def run(client: httpx.AsyncClient) -> tuple[str, list[dict]]:
    return await make_run(client)


async def test_run_metadata_and_scores(client: httpx.AsyncClient, run) -> None:
    run_id, lines = run
    response = await client.get(f"/api/runs/{run_id}")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == run_id and body["model"] == "cifar10"
    assert body["probabilities"] == lines[-1]["probabilities"]
    assert body["top"] == lines[-1]["top"]
    assert [layer["name"] for layer in body["layers"]] == [m["name"] for m in lines[1:-1]]
    assert body["layers"][0]["stats"] == lines[1]["stats"]
    assert body["expires"] - body["created"] == pytest.approx(3600, abs=5)
    assert "x-worker-pid" not in response.headers  # diagnostics are off by default


async def test_the_worker_pid_header_is_there_when_asked_for(tmp_path: Path) -> None:
    app = create_app(Settings(runs_dir=tmp_path / "runs", worker_pid_header=True))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            run_id, _ = await make_run(client)
            response = await client.get(f"/api/runs/{run_id}")
    assert response.headers["x-worker-pid"] == str(os.getpid())


async def test_layer_json_is_exact_and_npy_matches(client: httpx.AsyncClient, run) -> None:
    run_id, lines = run
    net = reference("cifar10")
    pixels = np.asarray(
        Image.open(io.BytesIO((await client.get(f"/api/runs/{run_id}/input.png?scale=1")).content))
    )
    volumes = net.forward(net.preprocess(pixels[None]))
    for index in (0, 4, 15, 16):
        body = (await client.get(f"/api/runs/{run_id}/layers/{index}.json")).json()
        assert body["run"] == run_id and body["index"] == index and body["layout"] == "HWD"
        assert body["name"] == net.layers[index].name and body["kind"] == net.layers[index].kind
        values = np.array(body["values"], np.float32)
        assert values.shape == tuple(body["shape"]) == volumes[index].shape[1:]
        assert np.array_equal(values, volumes[index][0])  # float32 values survive JSON exactly
        response = await client.get(f"/api/runs/{run_id}/layers/{index}.npy")
        assert response.headers["content-type"] == "application/octet-stream"
        assert f"{index}-{body['name']}.npy" in response.headers["content-disposition"]
        array = np.load(io.BytesIO(response.content), allow_pickle=False)
        assert array.dtype == np.float32 and np.array_equal(array, values)


async def test_npy_of_one_depth_slice(client: httpx.AsyncClient, run) -> None:
    run_id, _ = run
    whole = await client.get(f"/api/runs/{run_id}/layers/2.npy")
    volume = np.load(io.BytesIO(whole.content), allow_pickle=False)
    for d in (0, 5, volume.shape[2] - 1):
        response = await client.get(f"/api/runs/{run_id}/layers/2.npy?slice={d}")
        assert response.status_code == 200
        assert f"-slice{d}.npy" in response.headers["content-disposition"]
        one = np.load(io.BytesIO(response.content), allow_pickle=False)
        assert one.dtype == np.float32 and one.shape == volume.shape[:2]
        assert np.array_equal(one, volume[:, :, d])
        assert len(response.content) < len(whole.content) / volume.shape[2] + 128


async def test_input_png_is_the_preprocessed_input(client: httpx.AsyncClient, run) -> None:
    run_id, lines = run
    streamed = np.frombuffer(base64.b64decode(lines[0]["input"]["data"]), np.uint8)
    one = decode_png(await client.get(f"/api/runs/{run_id}/input.png?upscale=1"))
    assert np.array_equal(one.reshape(-1), streamed)
    four = decode_png(await client.get(f"/api/runs/{run_id}/input.png?upscale=4"))
    assert four.shape == (128, 128, 3) and np.array_equal(four[::4, ::4], one)
    # The old name for the same thing is still understood.
    old = decode_png(await client.get(f"/api/runs/{run_id}/input.png?scale=4"))
    assert np.array_equal(old, four)
    assert decode_png(await client.get(f"/api/runs/{run_id}/input.png")).shape[0] >= 128


async def test_layer_png_mosaic_and_one_slice(client: httpx.AsyncClient, run) -> None:
    run_id, _ = run
    mosaic = decode_png(await client.get(f"/api/runs/{run_id}/layers/0.png"))
    assert mosaic.ndim == 3 and max(mosaic.shape) <= 4096
    volume = np.array(
        (await client.get(f"/api/runs/{run_id}/layers/0.json")).json()["values"], np.float32
    )
    one = decode_png(
        await client.get(
            f"/api/runs/{run_id}/layers/0.png?slice=5&colormap=gray&scale=slice&upscale=1"
        )
    )
    expected = render.to_indices(
        volume[:, :, 5], "gray", volume[:, :, 5].min(), volume[:, :, 5].max()
    )
    assert np.array_equal(one[:, :, 0], expected)
    big = decode_png(await client.get(f"/api/runs/{run_id}/layers/0.png?slice=0&upscale=3"))
    assert big.shape == (96, 96, 3)


async def test_default_colormap_follows_the_sign(client: httpx.AsyncClient, run) -> None:
    run_id, _ = run
    signed = decode_png(await client.get(f"/api/runs/{run_id}/layers/0.png?slice=0&upscale=1"))
    relu = decode_png(await client.get(f"/api/runs/{run_id}/layers/1.png?slice=0&upscale=1"))
    coolwarm = {tuple(c) for c in render.COLORMAPS["coolwarm"]}
    viridis = {tuple(c) for c in render.COLORMAPS["viridis"]}
    assert {tuple(c) for c in signed.reshape(-1, 3)} <= coolwarm
    assert {tuple(c) for c in relu.reshape(-1, 3)} <= viridis


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("layers/17.png", 404, "no layer 17"),
        ("layers/-1.json", 404, "no layer -1"),
        ("layers/99.npy", 404, "no layer 99"),
        ("layers/0.npy?slice=32", 404, "no slice 32"),
        ("layers/0.npy?slice=-1", 422, "Query parameter 'slice'"),
        ("layers/0.png?slice=32", 404, "no slice 32"),
        ("layers/0.png?slice=-1", 422, "Query parameter 'slice'"),
        ("layers/x.png", 422, "Path parameter 'index'"),
        ("layers/0.png?colormap=jet", 422, "Query parameter 'colormap'"),
        ("layers/0.png?scale=global", 422, "Query parameter 'scale'"),
        ("layers/0.png?upscale=17", 422, "less than or equal to 16"),
        ("layers/0.png?upscale=0", 422, "greater than or equal to 1"),
        ("input.png?scale=99", 422, "Query parameter 'scale'"),
    ],
)
async def test_bad_layer_requests(
    client: httpx.AsyncClient, run, path: str, status: int, words: str
) -> None:
    run_id, _ = run
    response = await client.get(f"/api/runs/{run_id}/{path}")
    assert response.status_code == status
    assert words in response.json()["detail"]


@pytest.mark.parametrize("run_id", ["0" * 32, "not-a-run", "x.y", "A" * 32])
async def test_unknown_run_says_upload_again(client: httpx.AsyncClient, run_id: str) -> None:
    for path in ("", "/input.png", "/layers/0.png", "/layers/0.json", "/layers/0.npy"):
        response = await client.get(f"/api/runs/{run_id}{path}")
        assert response.status_code == 404
        assert response.json()["detail"].endswith("Upload the image again.")


async def test_paths_outside_the_store_are_plain_404s(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/runs/..%2F..%2Fetc%2Fpasswd/layers/0.npy")
    assert response.status_code == 404
    assert response.json() == {"detail": ROUTING_SENTENCES[404]}


async def test_a_wrong_method_is_a_405_sentence_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/models")
    assert response.status_code == 405
    assert response.json() == {"detail": ROUTING_SENTENCES[405]}
    assert response.headers["allow"] == "GET"


async def test_expired_run_is_gone(client: httpx.AsyncClient, run, app) -> None:
    run_id, _ = run
    path = app.state.run_store.path(run_id)
    past = path.stat().st_mtime - 3601
    os.utime(path, (past, past))
    response = await client.get(f"/api/runs/{run_id}/layers/0.json")
    assert response.status_code == 404 and "expired" in response.json()["detail"]


async def test_only_the_newest_runs_are_kept(tmp_path: Path) -> None:
    # One compute process, one writer: it evicts exactly. Several writers may keep the store
    # over its budgets until they list it again (app/runs.py, RESCAN_SECONDS; a test in
    # tests/test_runs_store.py has several processes save at once).
    settings = Settings(
        runs_dir=tmp_path, run_cache_runs=2, models=("cifar10",), compute_processes=1
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            runs = [(await make_run(client, seed))[0] for seed in range(3)]
            statuses = [(await client.get(f"/api/runs/{r}")).status_code for r in runs]
    assert statuses == [404, 200, 200]
    assert len(list(tmp_path.glob("*.run"))) == 2


async def test_run_responses_may_be_cached_until_expiry(client: httpx.AsyncClient, run) -> None:
    run_id, _ = run
    response = await client.get(f"/api/runs/{run_id}/layers/3.png")
    cache = response.headers["cache-control"]
    assert cache.startswith("private, max-age=")
    assert 3500 < int(cache.split("=")[1]) <= 3600
