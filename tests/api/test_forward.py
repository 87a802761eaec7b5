"""POST /api/models/{id}/forward: the NDJSON stream, what it carries, and every bad upload."""

import asyncio
import base64
import json
import os
import re
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from PIL import Image

import model
from app import imaging, stream
from app.errors import UNEXPECTED
from app.main import create_app
from app.security import CONTENT_SECURITY_POLICY
from app.settings import Settings
from tests.api.networks import CIFAR_LAYERS, reference
from tests.asgi import receive_once
from tests.images import digit, encode, jpeg, photo, png, png_with_size
from tests.slow_app import GatedNetwork

REPO = Path(__file__).resolve().parents[2]


async def post(
    client: httpx.AsyncClient, data: bytes, model_id: str = "cifar10", field: str = "image"
) -> httpx.Response:
    files = {field: ("upload.bin", data, "application/octet-stream")}
    return await client.post(f"/api/models/{model_id}/forward", files=files)


def messages(response: httpx.Response) -> list[dict]:
    assert response.text.endswith("\n")
    return [json.loads(line) for line in response.text.splitlines()]


def input_pixels(run: dict) -> np.ndarray:
    data = np.frombuffer(base64.b64decode(run["input"]["data"]), np.uint8)
    return data.reshape(run["input"]["shape"])


def half_step(line: dict) -> float:
    """The most a dequantised number may be off: half a quantisation step (and rounding)."""
    return (line["scale"]["max"] - line["scale"]["min"]) / 510 * 1.001 + 1e-6


@asynccontextmanager
async def client_for(tmp_path: Path, **options) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(runs_dir=tmp_path / "runs", **options))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


# --- the stream ------------------------------------------------------------------------


async def test_stream_is_run_then_every_layer_then_scores(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    upload = png(photo(64, 48))
    response = await post(client, upload)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = messages(response)
    assert [m["type"] for m in lines] == ["run"] + ["layer"] * CIFAR_LAYERS + ["scores"]

    run = lines[0]
    assert re.fullmatch(r"[0-9a-f]{32}", run["id"]) and response.headers["x-run-id"] == run["id"]
    served = app.state.registry.get("cifar10")
    assert (run["model"], run["trained"], run["layer_count"]) == ("cifar10", served.trained, 17)
    assert run["classes"] == served.network.classes
    assert run["input"] | {"data": None} == {
        "shape": [32, 32, 3],
        "encoding": "uint8",
        "layout": "HWD",
        "data": None,
    }
    pixels = input_pixels(run)
    expected = imaging.prepare(upload, (32, 32, 3), digits=False, max_pixels=10**8)
    assert np.array_equal(pixels, expected)


async def test_volumes_match_the_python_api_within_a_quantisation_step(
    client: httpx.AsyncClient,
) -> None:
    lines = messages(await post(client, jpeg(photo(80, 60, seed=4))))
    net = reference("cifar10")
    volumes = [v[0] for v in net.forward(net.preprocess(input_pixels(lines[0])[None]))]
    elapsed = 0.0
    for line, layer, volume in zip(lines[1:-1], net.layers, volumes, strict=True):
        assert (line["name"], line["kind"], line["shape"]) == (
            layer.name,
            layer.kind,
            list(volume.shape),
        )
        assert (line["encoding"], line["layout"]) == ("uint8", "DHW")
        assert line["stats"]["min"] == pytest.approx(float(volume.min()), rel=1e-5, abs=1e-6)
        assert line["stats"]["max"] == pytest.approx(float(volume.max()), rel=1e-5, abs=1e-6)
        assert line["stats"]["mean"] == pytest.approx(float(volume.mean()), rel=1e-4, abs=1e-6)
        assert line["stats"]["std"] == pytest.approx(float(volume.std()), rel=1e-4, abs=1e-6)
        assert line["stats"]["zeros"] == pytest.approx(float(np.mean(volume == 0)), abs=1e-3)
        assert line["scale"] == {"min": line["stats"]["min"], "max": line["stats"]["max"]}
        decoded = stream.dequantize(line)
        assert np.abs(decoded - volume).max() <= half_step(line)
        assert line["elapsed_ms"] >= elapsed
        elapsed = line["elapsed_ms"]
    relu = lines[2]
    assert relu["kind"] == "relu" and relu["stats"]["min"] == 0 and relu["stats"]["zeros"] > 0

    scores = lines[-1]
    probs = np.array(scores["probabilities"])
    assert probs.sum() == pytest.approx(1.0, abs=1e-9)
    assert probs == pytest.approx(net.predict(net.preprocess(input_pixels(lines[0])[None]))[0])
    top = scores["top"]
    assert len(top) == 5
    assert [t["probability"] for t in top] == sorted(probs, reverse=True)[:5]
    assert all(net.classes[t["index"]] == t["class"] for t in top)
    assert scores["elapsed_ms"] >= elapsed


async def test_streamed_volumes_match_the_json_endpoint(client: httpx.AsyncClient) -> None:
    lines = messages(await post(client, png(photo(seed=7))))
    run_id = lines[0]["id"]
    for line in lines[1:-1]:
        response = await client.get(f"/api/runs/{run_id}/layers/{line['index']}.json")
        exact = np.array(response.json()["values"], np.float32)
        assert exact.shape == tuple(line["shape"])
        assert np.abs(stream.dequantize(line) - exact).max() <= half_step(line)


async def test_constant_volume_is_all_zero_bytes() -> None:
    volume = np.full((2, 2, 3), 1.5, np.float32)
    line = json.loads(stream.LayerLines()(0, "x", "conv", volume, 0.0))
    assert set(base64.b64decode(line["data"])) == {0}
    assert np.array_equal(stream.dequantize(line), volume)


async def test_mnist_upload_looks_like_mnist(client: httpx.AsyncClient) -> None:
    lines = messages(await post(client, jpeg(digit().convert("RGB")), "mnist"))
    layer_count = len(model.build("mnist").layers)
    assert [m["type"] for m in lines] == ["run"] + ["layer"] * layer_count + ["scores"]
    pixels = input_pixels(lines[0])
    assert pixels.shape == (28, 28, 1)
    assert pixels[:4].max() == 0 and pixels.max() == 255  # light ink on black, margins
    assert len(lines[-1]["probabilities"]) == 10


@pytest.mark.parametrize(
    "upload",
    [
        jpeg(),
        png(),
        encode(photo(), "GIF"),
        encode(photo(), "WEBP"),
        encode(photo(), "BMP"),
        encode(photo(), "TIFF"),
        encode(photo().convert("CMYK"), "JPEG"),
        png(Image.new("LA", (30, 30), (0, 128))),
        png(Image.fromarray(np.arange(900, dtype=np.uint16).reshape(30, 30) * 70)),
    ],
    ids=["jpeg", "png", "gif", "webp", "bmp", "tiff", "cmyk", "la", "i16"],
)
async def test_every_format_and_mode_runs(client: httpx.AsyncClient, upload: bytes) -> None:
    response = await post(client, upload)
    assert response.status_code == 200
    assert messages(response)[-1]["type"] == "scores"


# --- bad uploads -----------------------------------------------------------------------


def assert_json_error(response: httpx.Response, status: int, *words: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail.endswith(".") and "Traceback" not in detail
    for word in words:
        assert word in detail
    return detail


@pytest.mark.parametrize(
    ("upload", "status", "words"),
    [
        (b"", 422, ["empty"]),
        (b"just some text, not a picture\n", 415, ["not an image", "PNG"]),
        (jpeg()[:300], 422, ["header"]),
        (jpeg()[: len(jpeg()) // 2], 422, ["JPEG", "could not be decoded"]),
        (png()[:-200], 422, ["PNG", "could not be decoded"]),
        (png_with_size(100_000, 100_000), 413, ["more than 16,800,000 pixels"]),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 1 1\n", 415, ["not an image"]),
    ],
    ids=["empty", "text", "cut-header", "truncated-jpeg", "truncated-png", "bomb", "eps"],
)
async def test_bad_images(client: httpx.AsyncClient, upload: bytes, status: int, words) -> None:
    assert_json_error(await post(client, upload), status, *words)


async def test_unknown_model(client: httpx.AsyncClient) -> None:
    assert_json_error(await post(client, png(), "imagenet"), 404, "no model 'imagenet'")


async def test_missing_or_misnamed_field(client: httpx.AsyncClient) -> None:
    assert_json_error(await post(client, png(), field="file"), 422, "no field named 'image'")
    response = await client.post("/api/models/cifar10/forward", data={"note": "hi"})
    assert_json_error(response, 415)  # a form without files is urlencoded: not multipart
    response = await client.post(
        "/api/models/cifar10/forward",
        files={"note": (None, b"hi")},
    )
    assert_json_error(response, 422, "no field named 'image'")


async def test_not_multipart(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/models/cifar10/forward", json={"image": "cat.jpg"})
    assert_json_error(response, 415, "multipart/form-data")
    response = await client.post(
        "/api/models/cifar10/forward", content=png(), headers={"content-type": "image/png"}
    )
    assert_json_error(response, 415, "multipart/form-data")


async def test_malformed_multipart(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/models/cifar10/forward",
        content=b"no boundary here",
        headers={"content-type": "multipart/form-data"},
    )
    assert_json_error(response, 422, "no boundary")
    body = b"--xyz\r\nContent-Disposition: form-data; name=image\r\nbroken" + b"\x00" * 100
    response = await client.post(
        "/api/models/cifar10/forward",
        content=body,
        headers={"content-type": "multipart/form-data; boundary=xyz"},
    )
    assert response.status_code == 422


async def test_body_over_the_limit_is_refused_from_content_length_alone(tmp_path: Path) -> None:
    chunks_read = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal chunks_read
        for _ in range(100):
            chunks_read += 1
            yield b"x" * 65536

    async with client_for(tmp_path, max_upload_bytes=100_000) as client:
        response = await client.post(
            "/api/models/cifar10/forward",
            content=body(),
            headers={
                "content-type": "multipart/form-data; boundary=xyz",
                "content-length": str(100 * 65536),
            },
        )
    assert_json_error(response, 413, "97.6562 KiB")
    assert chunks_read <= 1  # refused before the body was read


async def test_body_without_length_is_counted_while_streaming(tmp_path: Path) -> None:
    chunks_read = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal chunks_read
        yield b"--xyz\r\nContent-Disposition: form-data; name=image; filename=a.png\r\n\r\n"
        while chunks_read < 10_000:  # 640 MB if nobody stops reading
            chunks_read += 1
            yield b"x" * 65536

    async with client_for(tmp_path, max_upload_bytes=1_000_000) as client:
        response = await client.post(
            "/api/models/cifar10/forward",
            content=endless(),
            headers={"content-type": "multipart/form-data; boundary=xyz"},
        )
    assert_json_error(response, 413, "limit")
    assert chunks_read <= 1_000_000 // 65536 + 2


async def test_image_over_the_limit_in_a_small_body(tmp_path: Path) -> None:
    async with client_for(tmp_path, max_upload_bytes=5000) as client:
        assert_json_error(await post(client, b"\xff" * 5001), 413, "limit")
        assert (await post(client, png(photo(8, 8)))).status_code == 200


async def test_pixel_limit_comes_from_the_settings(tmp_path: Path) -> None:
    async with client_for(tmp_path, max_pixels=1000) as client:
        assert_json_error(await post(client, png(photo(40, 30))), 413, "1,000")
        assert (await post(client, png(photo(20, 20)))).status_code == 200


async def test_mutated_images_never_reach_the_500_handler(client: httpx.AsyncClient) -> None:
    # ASGITransport re-raises any unhandled error, so a 500 would fail this test loudly.
    rng = np.random.default_rng(5)
    originals = [jpeg(), png(), encode(photo(), "GIF"), encode(photo(), "WEBP"),
                 encode(photo(), "BMP"), encode(photo(), "TIFF")]  # fmt: skip
    for original in originals:
        for _ in range(8):
            data = bytearray(original[: rng.integers(1, len(original) + 1)])
            for position in rng.integers(0, len(data), size=rng.integers(0, 4)):
                data[position] = rng.integers(0, 256)
            response = await post(client, bytes(data))
            assert response.status_code in (200, 413, 415, 422)
            if response.status_code != 200:
                assert_json_error(response, response.status_code)


async def test_unexpected_errors_are_a_json_sentence(app: FastAPI) -> None:
    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {"detail": UNEXPECTED}
    assert "secret" not in response.text


# --- concurrency -----------------------------------------------------------------------


async def test_busy_server_answers_503_at_once(client: httpx.AsyncClient, app: FastAPI) -> None:
    gate = app.state.forward_gate
    for _ in range(gate.places):
        gate.enter()
    try:
        response = await post(client, png())
        assert_json_error(response, 503, "busy")
        assert response.headers["retry-after"] == "1"
    finally:
        for _ in range(gate.places):
            gate.leave()
    assert (await post(client, png())).status_code == 200


async def test_every_way_a_run_ends_gives_its_place_back(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    gate = app.state.forward_gate
    await post(client, png())
    await post(client, b"not an image")
    await post(client, png(), model_id="nope")
    assert gate.active == 0


class FailingNetwork:
    """A network that breaks after three layers."""

    def __init__(self, network: model.Network):
        self._network = network

    def __getattr__(self, name: str):
        return getattr(self._network, name)

    def forward_iter(self, x):
        for index, item in enumerate(self._network.forward_iter(x)):
            if index == 3:
                raise RuntimeError("out of memory, say")
            yield item


async def test_failure_midway_ends_the_stream_with_an_error_line(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    served = app.state.registry.get("cifar10")
    served.network = FailingNetwork(served.network)
    response = await post(client, png())
    assert response.status_code == 200
    lines = messages(response)
    assert [m["type"] for m in lines] == ["run", "layer", "layer", "layer", "error"]
    assert "upload the image again" in lines[-1]["detail"]
    assert "memory" not in lines[-1]["detail"]
    assert app.state.forward_gate.active == 0
    assert (await client.get(f"/api/runs/{lines[0]['id']}")).status_code == 404


# --- a real server ---------------------------------------------------------------------


def server_env(tmp_path: Path, **variables: str) -> dict[str, str]:
    return {
        **os.environ,
        "CONVSCOPE_RUNS_DIR": str(tmp_path / "runs"),
        "CONVSCOPE_MODELS": "cifar10",
        **variables,
    }


SLOW_SERVER = [sys.executable, "-m", "uvicorn", "--factory", "tests.slow_app:create_app"]


async def test_each_line_is_sent_before_the_next_layer_is_computed(app: FastAPI) -> None:
    """In-process, at the ASGI level: layer i + 1 is computed only once the line of layer i
    has been sent, so a stream that held lines back would stall here (and fail), not pass."""
    sent = threading.Semaphore(0)
    lines: list[dict] = []
    request = httpx.Request(
        "POST", "http://testserver/api/models/cifar10/forward", files={"image": ("a.png", png())}
    )
    body = request.read()
    finished = asyncio.Event()

    receive = receive_once(body, finished)

    async def send(message: dict) -> None:
        for line in message.get("body", b"").splitlines():
            lines.append(json.loads(line))
            sent.release()

    def wait(index: int) -> None:
        # The run line, then one line per layer computed so far.
        if not sent.acquire(timeout=30):
            raise TimeoutError(f"layer {index - 1}'s line was never sent")

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": request.url.path,
        "raw_path": request.url.raw_path,
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower(), v) for k, v in request.headers.raw],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    async with app.router.lifespan_context(app):
        served = app.state.registry.get("cifar10")
        served.network = GatedNetwork(served.network, wait, lambda: None)
        try:
            await app(scope, receive, send)
        finally:
            finished.set()
    types = [line["type"] for line in lines]
    assert types == ["run"] + ["layer"] * CIFAR_LAYERS + ["scores"]


def test_lines_arrive_as_each_layer_is_computed(run_server, tmp_path: Path) -> None:
    """Through a real uvicorn: each layer's line reaches the client before the next layer
    is computed (the server computes layer i + 1 only once the client has read layer i)."""
    gate = tmp_path / "gate"
    gate.mkdir()
    (gate / "go-0").touch()
    env = server_env(tmp_path, CONVSCOPE_TEST_GATE_DIR=str(gate))
    with run_server(SLOW_SERVER, cwd=REPO, env=env) as base_url:
        files = {"image": ("a.png", png(), "image/png")}
        url = f"{base_url}/api/models/cifar10/forward"
        with httpx.stream("POST", url, files=files, timeout=90) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            assert json.loads(next(lines))["type"] == "run"
            elapsed = []
            for index in range(CIFAR_LAYERS):
                message = json.loads(next(lines))
                assert (message["type"], message.get("index")) == ("layer", index), message
                elapsed.append(message["elapsed_ms"])
                (gate / f"go-{index + 1}").touch()
            assert json.loads(next(lines))["type"] == "scores"
    assert elapsed == sorted(elapsed)


def test_a_client_that_leaves_midway_gives_its_place_back(run_server, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    (gate / "go-0").touch()  # layer 0, and then the run waits for go-1, which never comes
    env = server_env(
        tmp_path, CONVSCOPE_TEST_GATE_DIR=str(gate), CONVSCOPE_MAX_CONCURRENT_FORWARDS="1"
    )
    with run_server(SLOW_SERVER, cwd=REPO, env=env) as base_url:
        url = f"{base_url}/api/models/cifar10/forward"
        files = {"image": ("a.png", png(), "image/png")}
        with httpx.stream("POST", url, files=files, timeout=30) as response:
            lines = response.iter_lines()
            next(lines), next(lines)  # the run and the first layer, then hang up
            busy = httpx.post(url, files=files, timeout=30)
            assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        # Not an image: answered 415 at once, but only once it has a place (else 503).
        not_image = {"image": ("a.png", b"not an image", "image/png")}
        deadline = time.monotonic() + 30
        while (status := httpx.post(url, files=not_image, timeout=30).status_code) == 503:
            assert time.monotonic() < deadline, "the place was never given back"
            time.sleep(0.05)
        assert status == 415
        # Given back while the abandoned run still waited for its next layer.
        assert not (gate / "ended").exists()
        for index in range(CIFAR_LAYERS):
            (gate / f"go-{index}").touch()  # let it end, so the server stops at once
