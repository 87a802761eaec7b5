"""GET /api/runs/{run}/layers/{i}/neurons/{row}/{col}/{depth} against loops written here.

Everything the loops use comes over HTTP, not from the server's objects: the layer's input
(the previous layer's layers/{i-1}.json, or the input picture normalised with the model's
own mean and std), the weights from /api/models/{id}/layers/{i}/weights, and the stored
number from layers/{i}.json.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from app.main import create_app
from app.settings import Settings
from model import arithmetic
from tests.api.test_runs import make_run

U = 2.0**-24  # float32's unit roundoff
CORNERS_EDGES_MIDDLE = [(0, 0), (0, -1), (-1, 0), (-1, -1), (0, "mid"), ("mid", 0), ("mid", "mid")]


class Run:
    """One cifar10 run and what the loops need of it, fetched once per layer."""

    def __init__(self, client: httpx.AsyncClient, run_id: str):
        self.client, self.id = client, run_id
        self.cache: dict[str, dict] = {}

    async def get(self, url: str) -> dict:
        if url not in self.cache:
            response = await self.client.get(url)
            assert response.status_code == 200, response.text
            self.cache[url] = response.json()
        return self.cache[url]

    async def model(self) -> dict:
        return await self.get("/api/models/cifar10")

    async def values(self, index: int) -> list:
        return (await self.get(f"/api/runs/{self.id}/layers/{index}.json"))["values"]

    async def before(self, index: int) -> list:
        """The volume layer `index` reads, as nested lists [row][col][channel]."""
        if index > 0:
            return await self.values(index - 1)
        response = await self.client.get(f"/api/runs/{self.id}/input.png?scale=1")
        pixels = np.asarray(Image.open(io.BytesIO(response.content)), np.float32)
        norm = (await self.model())["normalization"]
        mean, std = np.float32(norm["mean"]), np.float32(norm["std"])
        return ((pixels - mean) / std).astype(np.float32).tolist()

    async def weights(self, index: int) -> dict:
        return await self.get(f"/api/models/cifar10/layers/{index}/weights")

    async def neuron(self, index: int, row: int, col: int, depth: int) -> dict:
        url = f"/api/runs/{self.id}/layers/{index}/neurons/{row}/{col}/{depth}"
        response = await self.client.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["layer"] == index and body["position"] == [row, col, depth]
        assert body["value"] == (await self.values(index))[row][col][depth]  # exactly
        assert body["agrees"] is True
        return body


@pytest.fixture
async def run(client: httpx.AsyncClient) -> Run:
    run_id, _ = await make_run(client, seed=3)
    return Run(client, run_id)


def positions(shape: list[int]) -> list[tuple[int, int]]:
    """Corners, the middle of the top and left edges, and the middle of the volume."""
    h, w, _ = shape
    at = {0: (0, 0), -1: (h - 1, w - 1), "mid": (h // 2, w // 2)}
    return [(at[r][0], at[c][1]) for r, c in CORNERS_EDGES_MIDDLE]


CONV_LAYERS = [0, 2, 5, 7, 10, 12]


@pytest.mark.parametrize("index", CONV_LAYERS)
async def test_conv_neurons_match_a_loop_over_window_and_filter(run: Run, index: int) -> None:
    layer = (await run.model())["layers"][index]
    k, stride, pad = layer["size"], layer["stride"], layer["pad"]
    before = await run.before(index)
    h, w, c = len(before), len(before[0]), len(before[0][0])
    params = await run.weights(index)
    for n, (row, col) in enumerate(positions(layer["shape"])):
        depth = (7 * n + index) % layer["shape"][2]
        body = await run.neuron(index, row, col, depth)
        r0, c0 = row * stride - pad, col * stride - pad
        assert body["input"] == {
            "layer": index - 1,
            "name": "input" if index == 0 else (await run.model())["layers"][index - 1]["name"],
            "shape": [h, w, c],
            "rows": [r0, r0 + k],
            "cols": [c0, c0 + k],
        }
        bias = params["bias"][depth]
        total, magnitude = bias, abs(bias)
        for i in range(k):
            for j in range(k):
                r, cc = r0 + i, c0 + j
                inside = 0 <= r < h and 0 <= cc < w
                for ch in range(c):
                    x = before[r][cc][ch] if inside else 0.0
                    weight = params["weight"][depth][ch][i][j]
                    assert body["window"][i][j][ch] == x
                    assert body["weights"][i][j][ch] == weight
                    total += x * weight
                    magnitude += abs(x * weight)
        sums = [
            math.fsum(
                body["window"][i][j][ch] * body["weights"][i][j][ch]
                for i in range(k)
                for j in range(k)
            )
            for ch in range(c)
        ]
        assert body["channel_sums"] == pytest.approx(sums, rel=1e-12, abs=1e-12)
        assert body["bias"] == bias
        assert body["recomputed"] == pytest.approx(bias + math.fsum(sums), rel=1e-12, abs=1e-12)
        # The stored float32 number is the loop's sum up to float32 rounding (gamma_n bound).
        n_terms = k * k * c + 1
        bound = n_terms * U / (1 - n_terms * U) * magnitude
        assert abs(body["value"] - total) <= bound + 1e-12
        assert body["tolerance"] == pytest.approx(bound, rel=1e-9)
        assert body["weight_count"] == {"neuron": k * k * c + 1, "fully_connected": h * w * c + 1}
    # Padding shows as zeros: the top-left neuron of a padded layer reads row -1 and col -1.
    corner = await run.neuron(index, 0, 0, 0)
    if pad:
        assert all(x == 0 for x in corner["window"][0][0])


@pytest.mark.parametrize("index", [1, 13])
async def test_relu_neurons_rectify_their_input(run: Run, index: int) -> None:
    layer = (await run.model())["layers"][index]
    before = await run.before(index)
    for row, col in positions(layer["shape"]):
        for depth in (0, layer["shape"][2] - 1):
            body = await run.neuron(index, row, col, depth)
            x = before[row][col][depth]
            assert body["input_value"] == x
            assert body["value"] == max(0.0, x) == body["recomputed"]
            assert body["input"]["rows"] == [row, row + 1]


@pytest.mark.parametrize("index", [4, 9, 14])
async def test_pool_neurons_are_the_maximum_of_their_window(run: Run, index: int) -> None:
    layer = (await run.model())["layers"][index]
    before = await run.before(index)
    k, s = layer["size"], layer["stride"]
    for row, col in positions(layer["shape"]):
        depth = (row + 3 * col) % layer["shape"][2]
        body = await run.neuron(index, row, col, depth)
        window = [[before[row * s + i][col * s + j][depth] for j in range(k)] for i in range(k)]
        assert body["window"] == window
        r, c = body["argmax"]
        best = max(x for line in window for x in line)
        assert window[r][c] == best == body["value"]
        first = next((i, j) for i in range(k) for j in range(k) if window[i][j] == best)
        assert (r, c) == first
        assert body["input"]["rows"] == [row * s, row * s + k]


async def test_fc_terms_are_every_input_times_its_weight_in_torch_order(run: Run) -> None:
    index = 15
    before = await run.before(index)
    h, w, c = len(before), len(before[0]), len(before[0][0])
    params = await run.weights(index)
    for depth in range(10):
        body = await run.neuron(index, 0, 0, depth)
        # torch.flatten of NCHW: channel-major, then row, then column.
        flat = [before[r][cc][ch] for ch in range(c) for r in range(h) for cc in range(w)]
        terms = [x * weight for x, weight in zip(flat, params["weight"][depth], strict=True)]
        assert body["terms"] == pytest.approx(terms, rel=1e-15, abs=0)
        assert body["bias"] == params["bias"][depth]
        total = params["bias"][depth] + math.fsum(terms)
        assert body["recomputed"] == pytest.approx(total, rel=1e-12, abs=1e-12)
        magnitude = abs(body["bias"]) + math.fsum(abs(t) for t in terms)
        assert abs(body["value"] - total) <= (len(terms) + 1) * U * 1.01 * magnitude
        largest = sorted(range(len(terms)), key=lambda i: -abs(terms[i]))[: len(body["top"])]
        assert [t["index"] for t in body["top"]] == largest
        for top in body["top"]:
            r, cc, ch = top["position"]
            assert top["input"] == before[r][cc][ch] == flat[top["index"]]
            assert top["term"] == pytest.approx(terms[top["index"]], rel=1e-15)
        assert body["input"] | {"name": None} == {
            "layer": 14,
            "name": None,
            "shape": [h, w, c],
            "rows": [0, h],
            "cols": [0, w],
        }
        assert body["weight_count"] == {"neuron": h * w * c + 1, "fully_connected": h * w * c + 1}


async def test_softmax_divides_each_exponential_by_their_sum(run: Run) -> None:
    logits = (await run.before(16))[0][0]
    exps = [math.exp(x) for x in logits]
    for depth in range(10):
        body = await run.neuron(16, 0, 0, depth)
        assert body["logits"] == logits and body["shift"] == 0
        assert body["exps"] == pytest.approx(exps, rel=1e-15)
        assert body["sum"] == pytest.approx(math.fsum(exps), rel=1e-14)
        assert body["recomputed"] == pytest.approx(exps[depth] / math.fsum(exps), rel=1e-14)
        assert abs(body["value"] - body["recomputed"]) <= 1e-5 * body["recomputed"] + 1e-30
        assert body["receptive_field"] == {"rows": [0, 32], "cols": [0, 32]}


async def test_the_receptive_field_is_the_models_box_half_open(run: Run) -> None:
    rf = (await run.model())["layers"][5]["receptive_field"]  # conv3: 10x10, jump 2
    body = await run.neuron(5, 0, 3, 0)
    half = (rf["size"] - 1) / 2
    left = math.ceil(rf["start"] + 3 * rf["jump"] - half)
    top = math.ceil(rf["start"] - half)
    assert body["receptive_field"] == {
        "rows": [max(top, 0), top + rf["size"]],
        "cols": [left, left + rf["size"]],
    }


@pytest.mark.parametrize(
    "path, status, words",
    [
        ("layers/17/neurons/0/0/0", 404, "there is no layer 17"),
        ("layers/0/neurons/32/0/0", 404, "there is no neuron at (32, 0, 0)"),
        ("layers/0/neurons/0/0/32", 404, "depth 0 to 31"),
        ("layers/15/neurons/1/0/0", 404, "1x1x10"),
        ("layers/0/neurons/-1/0/0", 422, "row"),
        ("layers/0/neurons/0/x/0", 422, "col"),
        ("layers/zero/neurons/0/0/0", 422, "index"),
    ],
)
async def test_bad_positions_and_layers_say_why(
    run: Run, path: str, status: int, words: str
) -> None:
    response = await run.client.get(f"/api/runs/{run.id}/{path}")
    assert response.status_code == status
    assert words in response.json()["detail"]


async def test_an_unknown_run_says_to_upload_again(client: httpx.AsyncClient) -> None:
    for run_id in ("0" * 32, "not-a-run"):
        response = await client.get(f"/api/runs/{run_id}/layers/0/neurons/0/0/0")
        assert response.status_code == 404
        assert "Upload the image again" in response.json()["detail"]


async def test_a_run_of_a_model_no_longer_served_says_so(run: Run, tmp_path: Path) -> None:
    other = create_app(Settings(runs_dir=tmp_path / "runs", models=("mnist",)))
    async with other.router.lifespan_context(other):
        transport = httpx.ASGITransport(app=other)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get(f"/api/runs/{run.id}/layers/0/neurons/0/0/0")
    assert response.status_code == 404
    assert "model cifar10, which this server no longer serves" in response.json()["detail"]


async def test_the_route_is_documented_for_every_kind(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    route = schema["paths"]["/api/runs/{run_id}/layers/{index}/neurons/{row}/{col}/{depth}"]
    answer = route["get"]["responses"]
    assert {"200", "404", "422"} <= set(answer)
    kinds = answer["200"]["content"]["application/json"]["schema"]["discriminator"]["mapping"]
    assert set(kinds) == set(arithmetic.EXPLAIN)  # every kind broken down is documented
    assert {"conv", "relu", "pool", "fc", "softmax", "conv2d", "batchnorm"} <= set(kinds)
    models = schema["components"]["schemas"]
    conv = models["ConvNeuron"]["properties"]
    assert {"window", "weights", "bias", "channel_sums", "value", "input"} <= set(conv)
    assert {"input_channels", "dilation", "channel_sums"} <= set(
        models["Conv2dNeuron"]["properties"]
    )
    assert "logsumexp" in models["LogsoftmaxNeuron"]["properties"]["logsumexp"]["description"]


async def test_a_layer_kind_without_a_breakdown_is_refused_with_a_sentence(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As for a kind an imported model may bring before its arithmetic is written.
    monkeypatch.delitem(arithmetic.EXPLAIN, "relu")
    response = await run.client.get(f"/api/runs/{run.id}/layers/1/neurons/0/0/0")
    assert response.status_code == 422
    assert response.json() == {"detail": "relu1 is a relu layer, whose arithmetic is not shown."}
