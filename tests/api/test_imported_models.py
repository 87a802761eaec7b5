"""An imported model served end to end: listed with its card, streamed layer by layer, its
layers fetched again, exactly as the same network computes them through the Python API."""

import base64
import io
import json
import math
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest

import model
from app import stream
from app.cli import main
from app.main import create_app
from app.settings import Settings
from tests.images import encode, photo
from tests.onnx_graphs import Graph, small_classifier


def general_graph() -> Graph:
    """A 3-channel 20x20 network of general kinds: rectangular conv, batchnorm, leaky relu,
    depthwise conv, ceil-mode pool, global average pool, log-softmax."""
    graph = Graph((1, 3, 20, 20), seed=11)
    graph.conv(6, (3, 5), stride=2, pads=[1, 2, 1, 2]).batchnorm().op("LeakyRelu", alpha=0.1)
    graph.conv(6, 3, pads=1, group=6)
    graph.op("MaxPool", kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1).op("GlobalAveragePool")
    return graph.op("Flatten").gemm(4).op("LogSoftmax", axis=1)


def squashing_graph() -> Graph:
    """The other general kinds: sigmoid, an average pool counting its padding, tanh, and
    the flatten a softmax over a volume needs."""
    graph = Graph((1, 3, 10, 10), seed=12)
    graph.conv(4, 3, pads=1).op("Sigmoid")
    pool = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    graph.op("AveragePool", count_include_pad=1, **pool).op("Tanh")
    return graph.op("Flatten").op("Softmax", axis=1)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    models_dir = tmp_path / "models"
    for name, graph, extra in (
        ("general", general_graph(), ["--classes", "w,x,y,z", "--mean", *["120"] * 3]),
        ("grey", small_classifier(seed=2, channels=1, side=12), []),
        ("squash", squashing_graph(), []),
    ):
        source = tmp_path / f"{name}.onnx"
        source.write_bytes(graph.bytes())
        if name == "general":
            extra += ["--std", *["60"] * 3]
        args = ["import", str(source), "--id", name, "--models-dir", str(models_dir), *extra]
        assert main(args) == 0
    app = create_app(Settings(runs_dir=tmp_path / "runs", models_dir=models_dir))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            client.models_dir = models_dir
            yield client


async def test_imported_models_are_listed_beside_the_shipped_ones(client):
    models = {m["id"]: m for m in (await client.get("/api/models")).json()["models"]}
    assert list(models) == ["cifar10", "mnist", "cs231n", "general", "grey", "squash"]
    general = models["general"]
    assert general["trained"] is True and general["test_accuracy"] is None
    assert general["input"] == [20, 20, 3] and general["classes"] == ["w", "x", "y", "z"]
    assert general["normalization"] == {"mean": [120.0] * 3, "std": [60.0] * 3}
    assert general["source"]["file"] == "general.onnx" and general["source"]["opset"] == 13
    assert general["source"]["imported"].startswith("20")
    kinds = [layer["kind"] for layer in general["layers"]]
    assert kinds == [
        "conv2d",
        "batchnorm",
        "leakyrelu",
        "conv2d",
        "maxpool",
        "gap",
        "fc",
        "logsoftmax",
    ]
    assert general["layers"][0]["pads"] == [1, 2, 1, 2] and general["layers"][3]["groups"] == 6
    assert general["layers"][0]["summary"] == "CONV 3x5x6 /2 -> 10x10x6"
    assert models["cifar10"]["source"] is None
    page = await client.get("/")
    assert '<option value="general">general — ' in page.text


async def test_an_imported_model_streams_and_serves_its_layers(client):
    files = {"image": ("p.png", encode(photo(40, 30), "PNG"), "image/png")}
    response = await client.post("/api/models/general/forward", files=files)
    assert response.status_code == 200
    lines = [json.loads(line) for line in response.text.splitlines()]
    run, layers, scores = lines[0], lines[1:-1], lines[-1]
    assert run["type"] == "run" and run["model"] == "general" and run["layer_count"] == 8
    assert [line["kind"] for line in layers][-2:] == ["fc", "logsoftmax"]
    net = model.load(client.models_dir / "general.json")
    pixels = np.frombuffer(base64.b64decode(run["input"]["data"]), np.uint8)
    volumes = net.forward(net.preprocess(pixels.reshape(1, 20, 20, 3)))
    for line, volume in zip(layers, volumes, strict=True):
        assert line["shape"] == list(volume.shape[1:])
        step = (line["scale"]["max"] - line["scale"]["min"]) / 510 * 1.001 + 1e-6
        assert np.abs(stream.dequantize(line) - volume[0]).max() <= step
    # log-softmax scores become probabilities, as a softmax's would
    expected = np.exp(volumes[-1].ravel())
    np.testing.assert_allclose(scores["probabilities"], expected, rtol=1e-5)
    for index in (0, 3, 7):
        exact = await client.get(f"/api/runs/{run['id']}/layers/{index}.npy")
        assert exact.status_code == 200
        array = np.load(io.BytesIO(exact.content))
        np.testing.assert_array_equal(array, volumes[index][0])
    png = await client.get(f"/api/runs/{run['id']}/layers/1.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    weights = await client.get("/api/models/general/layers/0/weights")
    assert weights.json()["shape"] == [6, 3, 3, 5]


async def test_a_grey_import_reads_uploads_as_digits(client):
    models = {m["id"]: m for m in (await client.get("/api/models")).json()["models"]}
    assert models["grey"]["input"] == [12, 12, 1]
    files = {"image": ("d.png", encode(photo(50, 50).convert("L"), "PNG"), "image/png")}
    response = await client.post("/api/models/grey/forward", files=files)
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert lines[0]["input"]["shape"] == [12, 12, 1] and lines[-1]["type"] == "scores"
    assert sum(lines[-1]["probabilities"]) == pytest.approx(1.0, abs=1e-5)


def expected_parts(layer, before: np.ndarray, body: dict) -> None:
    """The route's parts against the stored input volume and the model's weights, by loops
    and formulas written here."""
    row, col, depth = body["position"]
    h, w, _ = before.shape
    p, kind = layer.params, body["kind"]
    value = body["recomputed"]

    def at(r, c, ch, fill):
        return float(before[r, c, ch]) if 0 <= r < h and 0 <= c < w else fill

    if kind == "conv2d":
        (r0, _), (c0, _) = body["input"]["rows"], body["input"]["cols"]
        (dh, dw), weight = body["dilation"], p["weight"][depth]
        total = float(p["bias"][depth])
        for k, ch in enumerate(body["input_channels"]):
            for i, j in np.ndindex(*weight.shape[1:]):
                x = at(r0 + i * dh, c0 + j * dw, ch, 0.0)
                assert body["window"][i][j][k] == x
                total += x * float(weight[k, i, j])
        assert value == pytest.approx(total, rel=1e-9, abs=1e-9)
        assert body["weight_count"]["neuron"] == weight.size + 1
    elif kind in ("maxpool", "avgpool"):
        (r0, _), (c0, _) = body["input"]["rows"], body["input"]["cols"]
        fill = None if kind == "maxpool" else 0.0
        window = [
            [at(r0 + i, c0 + j, depth, fill) for j in range(len(body["window"][0]))]
            for i in range(len(body["window"]))
        ]
        assert body["window"] == window
        numbers = [v for line in window for v in line if v is not None]
        if kind == "maxpool":
            assert value == max(numbers)
        else:
            assert body["count"] == sum(map(sum, body["counted"]))
            assert value == pytest.approx(sum(numbers) / body["count"], rel=1e-9, abs=1e-9)
    elif kind == "gap":
        channel = [float(before[r, c, depth]) for r in range(h) for c in range(w)]
        assert body["count"] == h * w and body["input"]["rows"] == [0, h]
        assert body["sum"] == pytest.approx(math.fsum(channel), rel=1e-9, abs=1e-9)
        assert value == body["mean"] == pytest.approx(math.fsum(channel) / (h * w), rel=1e-9)
        (r0, r1), (c0, c1) = body["window_rows"], body["window_cols"]
        assert (r0, r1, c0, c1) == (0, min(h, 12), 0, min(w, 12))
        assert body["window"] == [[at(r, c, depth, None) for c in range(c1)] for r in range(r1)]
    elif kind == "batchnorm":
        x = float(before[row, col, depth])
        std = math.sqrt(float(p["running_var"][depth]) + layer.eps)
        normal = (x - float(p["running_mean"][depth])) / std
        expected = float(p["weight"][depth]) * normal + float(p["bias"][depth])
        assert value == pytest.approx(expected, rel=1e-9, abs=1e-9)
    elif kind in ("leakyrelu", "sigmoid", "tanh", "relu"):
        x = float(before[row, col, depth])
        assert body["input_value"] == x
        formula = {
            "leakyrelu": lambda: x if x > 0 else body["alpha"] * x,
            "sigmoid": lambda: 1 / (1 + math.exp(-x)),
            "tanh": lambda: math.tanh(x),
            "relu": lambda: max(x, 0.0),
        }[kind]
        assert value == pytest.approx(formula(), rel=1e-12, abs=1e-12)
    elif kind == "flatten":
        r, c, d = body["source"]
        assert d * h * w + r * w + c == depth and value == float(before[r, c, d])
    elif kind == "logsoftmax":
        logits = before[0, 0].astype(float)
        expected = logits[depth] - math.log(sum(math.exp(v) for v in logits))
        assert body["logits"] == logits.tolist() and value == pytest.approx(expected, abs=1e-9)


async def test_every_kind_of_an_imported_model_explains_its_neurons(client):
    """Corners and middles of every layer of both general models: the stored number, parts
    that add up to it within float32 rounding, and parts that are the stored input's."""
    seen = set()
    for model_id in ("general", "squash"):
        files = {"image": ("p.png", encode(photo(40, 30), "PNG"), "image/png")}
        response = await client.post(f"/api/models/{model_id}/forward", files=files)
        run = json.loads(response.text.splitlines()[0])
        net = model.load(client.models_dir / f"{model_id}.json")
        pixels = np.frombuffer(base64.b64decode(run["input"]["data"]), np.uint8)
        before = net.preprocess(pixels.reshape(1, *net.input_shape))[0]
        for index, layer in enumerate(net.layers):
            url = f"/api/runs/{run['id']}/layers/{index}"
            volume = np.load(io.BytesIO((await client.get(f"{url}.npy")).content))
            h, w, d = volume.shape
            for position in ((0, 0, 0), (h - 1, w - 1, d - 1), (h // 2, w // 2, d // 2)):
                answer = await client.get(f"{url}/neurons/{'/'.join(map(str, position))}")
                assert answer.status_code == 200, answer.text
                body = answer.json()
                assert body["kind"] == layer.kind and body["value"] == float(volume[position])
                assert body["agrees"] is True and body["input"]["layer"] == index - 1
                expected_parts(layer, before, body)
                seen.add(layer.kind)
                if layer.kind == "maxpool" and None in sum(body["window"], []):
                    seen.add("maxpool past the edge")
            outside = await client.get(f"{url}/neurons/{h}/0/0")
            assert outside.status_code == 404 and f"rows 0 to {h - 1}" in outside.json()["detail"]
            before = volume
    assert seen >= {
        "conv2d", "batchnorm", "leakyrelu", "maxpool", "gap", "logsoftmax",
        "sigmoid", "avgpool", "tanh", "flatten", "maxpool past the edge",
    }  # fmt: skip


async def test_a_gap_neuron_of_a_224x224_model_sends_a_corner_and_the_exact_sum(tmp_path: Path):
    """The page shows at most 12 x 12 numbers: the answer is those, the sum and the count
    of all 50,176, not the whole channel."""
    graph = Graph((1, 1, 224, 224), seed=13)
    graph.conv(2, 3, pads=1).op("GlobalAveragePool").op("Flatten").gemm(2).op("Softmax", axis=1)
    source = tmp_path / "wide.onnx"
    source.write_bytes(graph.bytes())
    models_dir = tmp_path / "models"
    assert main(["import", str(source), "--id", "wide", "--models-dir", str(models_dir)]) == 0
    app = create_app(Settings(runs_dir=tmp_path / "runs", models_dir=models_dir))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            files = {"image": ("p.png", encode(photo(300, 260), "PNG"), "image/png")}
            response = await client.post("/api/models/wide/forward", files=files)
            run = json.loads(response.text.splitlines()[0])["id"]
            layers = f"/api/runs/{run}/layers"
            conv = np.load(io.BytesIO((await client.get(f"{layers}/0.npy")).content))
            pooled = np.load(io.BytesIO((await client.get(f"{layers}/1.npy")).content))
            answer = await client.get(f"{layers}/1/neurons/0/0/1")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert len(answer.content) < 8_000  # was the whole channel: 50,176 numbers, about 1 MB
    channel = [float(conv[r, c, 1]) for r in range(224) for c in range(224)]
    assert body["kind"] == "gap" and body["count"] == 50176 and body["agrees"] is True
    assert body["sum"] == pytest.approx(math.fsum(channel), rel=1e-9, abs=1e-9)
    assert body["mean"] == body["recomputed"] == pytest.approx(math.fsum(channel) / 50176, rel=1e-9)
    assert body["value"] == float(pooled[0, 0, 1])
    assert body["input"]["rows"] == [0, 224] and body["input"]["cols"] == [0, 224]
    assert body["window_rows"] == [0, 12] and body["window_cols"] == [0, 12]
    assert body["window"] == [[float(conv[r, c, 1]) for c in range(12)] for r in range(12)]
