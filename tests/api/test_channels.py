"""The channel routes: top patches, visualisations, their caching, and every error."""

import asyncio
import io
import json

import numpy as np
import pytest
from fastapi import FastAPI
from PIL import Image

from app.channels import ChannelViews
from app.main import create_app
from app.settings import Settings
from model.channels import VisSettings, build_index, visualize, weights_sha256
from tests.channels.tiny import tiny_images, write_test_index

BASE = "/api/models/mnist/layers"


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(
        runs_dir=tmp_path / "runs",
        channels_dir=tmp_path / "channels",
        channel_cache_dir=tmp_path / "cache",
        models=("mnist",),
    )


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


def mnist(app: FastAPI):
    return app.state.registry.get("mnist").network


def png_pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


async def stream_lines(client, url: str) -> list[dict]:
    return [json.loads(line) for line in (await client.get(url)).text.splitlines()]


def digits(count: int = 12) -> np.ndarray:
    return tiny_images(count, seed=4, shape=(28, 28, 1))


async def test_examples_are_the_index_sorted_with_their_patches(app, client, settings) -> None:
    net = mnist(app)
    images = digits()
    write_test_index(net, "mnist", settings.channels_dir / "mnist.channels", images)
    info = (await client.get("/api/models/mnist/channels")).json()
    assert info["index"]["status"] == "ok" and info["weights_sha256"] == weights_sha256(net)
    found = build_index(net, images, batch_size=4)  # as write_test_index: the same sums
    layer = found.layers[1]  # the first relu
    response = await client.get(f"{BASE}/{layer.index}/channels/3/examples")
    assert response.status_code == 200
    examples = response.json()["examples"]
    assert [e["value"] for e in examples] == layer.values[3].tolist()
    assert [e["value"] for e in examples] == sorted((e["value"] for e in examples), reverse=True)
    for rank, example in enumerate(examples):
        n = layer.images[3, rank]
        assert example["path"] == f"test/{n % 10}/{n:04d}.png"
        assert example["label"] == str(n % 10)
        assert (example["row"], example["col"]) == (layer.rows[3, rank], layer.cols[3, rank])
        patch = await client.get(example["image"])
        assert patch.headers["content-type"] == "image/png"
        np.testing.assert_array_equal(png_pixels(patch.content), layer.patches[3, rank, :, :, 0])
    etag = response.headers["etag"]
    assert weights_sha256(net)[:16] in etag
    again = await client.get(
        f"{BASE}/{layer.index}/channels/3/examples", headers={"If-None-Match": etag}
    )
    assert again.status_code == 304


async def test_a_stale_or_missing_index_is_said_not_served(app, client, settings) -> None:
    missing = await client.get(f"{BASE}/0/channels/0/examples")
    assert missing.status_code == 404
    assert "convscope index --model mnist" in missing.json()["detail"]
    assert (await client.get("/api/models/mnist/channels")).json()["index"]["status"] == "missing"
    folder = settings.channels_dir / "mnist.channels"
    write_test_index(mnist(app), "mnist", folder, digits(), wrong_hash=True)
    stale = await client.get(f"{BASE}/0/channels/0/examples")
    assert stale.status_code == 409
    assert "other weights" in stale.json()["detail"]
    assert "convscope index --model mnist" in stale.json()["detail"]
    assert (await client.get(f"{BASE}/0/channels/0/examples/0.png")).status_code == 409
    info = (await client.get("/api/models/mnist/channels")).json()["index"]
    assert info["status"] == "stale" and "rebuild" in info["detail"]


async def test_layers_without_channels_and_out_of_range_requests(app, client, settings) -> None:
    write_test_index(mnist(app), "mnist", settings.channels_dir / "mnist.channels", digits())
    layers = mnist(app).layers
    kinds = [layer.kind for layer in layers]
    fc, softmax = kinds.index("fc"), kinds.index("softmax")
    for suffix in ("examples", "examples/0.png", "visualization.json", "visualization.png"):
        for index in (fc, softmax):
            response = await client.get(f"{BASE}/{index}/channels/0/{suffix}")
            assert response.status_code == 422
            assert "no channels to show" in response.json()["detail"]
    depth = layers[0].output_shape[2]
    cases = {
        f"{BASE}/{len(layers)}/channels/0/examples": "there is no layer",
        f"{BASE}/0/channels/{depth}/examples": "there is no channel",
        f"{BASE}/0/channels/0/examples/9.png": "there is no example 9",
        f"{BASE}/0/channels/{depth}/visualization.png": "there is no channel",
        "/api/models/nope/layers/0/channels/0/examples": "There is no model",
    }
    for url, sentence in cases.items():
        response = await client.get(url)
        assert response.status_code == 404, url
        assert sentence in response.json()["detail"]
    bad = await client.get(f"{BASE}/0/channels/0/visualization.json?steps=0")
    assert bad.status_code == 422 and "steps" in bad.json()["detail"]


async def test_a_visualisation_is_made_once_then_served_from_disk(app, client, settings) -> None:
    url = f"{BASE}/0/channels/2/visualization"
    first = await client.get(f"{url}.json?steps=16")
    assert first.status_code == 200
    body = first.json()
    assert body["steps"] == 16 and body["settings"]["steps"] == 16
    assert body["activation"] > body["start_activation"]
    assert body["frames"]["steps"] == [0, 8, 16]
    assert body["frames"]["activations"][-1] == body["activation"]
    files = sorted(p.name for p in (settings.channel_cache_dir / "mnist").rglob("*.*"))
    assert files == ["00-002.json", "00-002.png"]
    image = await client.get(body["image"])
    assert png_pixels(image.content).shape == (28, 28)
    strip = await client.get(body["frames"]["url"])
    assert png_pixels(strip.content).shape == (28, 28 * 3)
    np.testing.assert_array_equal(png_pixels(strip.content)[:, -28:], png_pixels(image.content))
    again = await client.get(f"{url}.json?steps=16")
    assert again.json() == body
    cached = await client.get(body["image"], headers={"If-None-Match": image.headers["etag"]})
    assert cached.status_code == 304
    other = await client.get(f"{url}.json?steps=16&seed=1")
    assert other.json()["activation"] != body["activation"]


async def test_a_relu_channel_is_climbed_on_its_own(app, client, settings) -> None:
    net = mnist(app)
    relu = next(i for i, layer in enumerate(net.layers) if layer.kind == "relu")
    conv = (await client.get(f"{BASE}/{relu - 1}/channels/2/visualization.json?steps=16")).json()
    url = f"{BASE}/{relu}/channels/2/visualization"
    body = (await client.get(f"{url}.json?steps=16")).json()
    own = visualize(net, relu, 2, VisSettings(steps=16))
    assert body["activation"] == own.activation != conv["activation"]
    assert body["frames"]["activations"] == own.frame_activations
    assert body["frames"]["url"] != conv["frames"]["url"]
    files = sorted(p.name for p in (settings.channel_cache_dir / "mnist").rglob("*.*"))
    assert files == [f"{n:02d}-002.{e}" for n in (relu - 1, relu) for e in ("json", "png")]
    image = await client.get(body["image"])
    np.testing.assert_array_equal(png_pixels(image.content), own.image[:, :, 0])
    replayed = await stream_lines(client, f"{url}/stream?steps=16")
    assert [line["activation"] for line in replayed[:-1]] == own.frame_activations


async def test_thinned_precomputed_frames_are_served_and_replayed(app, client, settings) -> None:
    net = mnist(app)
    views = app.state.channel_views = ChannelViews(
        settings.channels_dir, settings.channel_cache_dir
    )
    served = app.state.registry.get("mnist")
    root = settings.channels_dir / "mnist.channels" / "visualizations"
    for layer in (0, 1):
        views.make_visualization(served, layer, 3, VisSettings(steps=32), root=root, keep_frames=3)
    url = f"{BASE}/1/channels/3/visualization"
    body = (await client.get(f"{url}.json?steps=32")).json()
    assert body["frames"]["steps"] == [0, 16, 32]
    strip = await client.get(body["frames"]["url"])
    assert png_pixels(strip.content).shape == (28, 28 * 3)
    lines = [
        json.loads(line) for line in (await client.get(f"{url}/stream?steps=32")).text.splitlines()
    ]
    assert [line.get("step") for line in lines] == [0, 16, 32, None]
    assert lines[-1]["activation"] == visualize(net, 1, 3, VisSettings(steps=32)).activation
    assert not (settings.channel_cache_dir / "mnist").exists()  # nothing computed on request


async def test_the_stream_sends_frames_as_they_form_then_the_result(client) -> None:
    url = f"{BASE}/3/channels/1/visualization/stream?steps=16"
    for attempt in ("computed", "replayed"):
        response = await client.get(url)
        assert response.status_code == 200, attempt
        lines = [json.loads(line) for line in response.text.splitlines()]
        frames = [line for line in lines if line["type"] == "frame"]
        assert [f["step"] for f in frames] == [0, 8, 16]
        assert frames[0]["image"].startswith("data:image/png;base64,")
        assert lines[-1]["type"] == "done"
        assert lines[-1]["activation"] == frames[-1]["activation"]


async def test_requests_for_one_visualisation_at_once_compute_it_once(app, client) -> None:
    await client.get("/api/models/mnist/channels")  # makes the app's ChannelViews
    views = app.state.channel_views
    made = []
    original = views.make_visualization

    def counted(*args, **kwargs):
        made.append(args[1:3])
        return original(*args, **kwargs)

    views.make_visualization = counted
    url = f"{BASE}/0/channels/4/visualization"
    answers = await asyncio.gather(
        *(client.get(f"{url}{suffix}?steps=8") for suffix in (".json", ".png", ".json", ".png")),
        client.get(f"{url}/stream?steps=8"),
    )
    assert [a.status_code for a in answers] == [200] * 5
    assert made == [(0, 4)]
    assert answers[0].json() == answers[2].json()
    assert answers[1].content == answers[3].content
    assert (
        json.loads(answers[4].text.splitlines()[-1])["activation"]
        == answers[0].json()["activation"]
    )
    assert app.state.forward_gate.active == 0 and views.being_made == {}


async def test_busy_server_answers_503_with_retry_after(app, client) -> None:
    gate = app.state.forward_gate
    gate.active = gate.places
    try:
        for suffix in ("visualization.png", "visualization.json", "visualization/stream"):
            response = await client.get(f"{BASE}/0/channels/5/{suffix}?steps=4")
            assert response.status_code == 503
            assert response.headers["retry-after"] == "1"
    finally:
        gate.active = 0
    assert (await client.get(f"{BASE}/0/channels/5/visualization.png?steps=4")).status_code == 200
    assert gate.active == 0


async def test_routes_are_documented(client) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for suffix in (
        "examples",
        "examples/{rank}.png",
        "visualization.json",
        "visualization.png",
        "visualization/frames.png",
        "visualization/stream",
    ):
        assert f"/api/models/{{model_id}}/layers/{{index}}/channels/{{channel}}/{suffix}" in paths
    assert "/api/models/{model_id}/channels" in paths
