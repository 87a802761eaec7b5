"""GET /api/models and the weights of a layer (JSON and PNG)."""

import io

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from PIL import Image

import model


def served_network(app: FastAPI, model_id: str) -> model.Network:
    return app.state.registry.get(model_id).network


def shipped_or_built(model_id: str) -> tuple[model.Network, bool]:
    try:
        return model.load(model_id), True
    except FileNotFoundError:
        return model.build(model_id), False


async def test_lists_every_model_with_its_layers(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/models")
    assert response.status_code == 200
    models = {m["id"]: m for m in response.json()["models"]}
    assert list(models) == ["cifar10", "mnist", "cs231n"]
    cifar = models["cifar10"]
    assert cifar["input"] == [32, 32, 3]
    assert cifar["classes"][3] == "cat" and len(cifar["classes"]) == 10
    assert cifar["normalization"]["mean"] == [125.3, 123.0, 113.9]
    assert len(cifar["layers"]) == 17
    conv1 = cifar["layers"][0]
    assert conv1 | {"receptive_field": None} == conv1 | {
        "index": 0,
        "name": "conv1",
        "kind": "conv",
        "shape": [32, 32, 32],
        "param_count": 32 * 3 * 3 * 3 + 32,
        "receptive_field": None,
    }
    assert conv1["receptive_field"] == {"size": 3, "jump": 1, "start": 0.0}
    assert conv1["filters"] == 32  # kind options come along
    assert cifar["layers"][4]["receptive_field"]["jump"] == 2  # after the first pool
    assert [layer["kind"] for layer in models["mnist"]["layers"]][-2:] == ["fc", "softmax"]
    assert models["mnist"]["input"] == [28, 28, 1]


async def test_trained_flag_follows_the_shipped_weights(client: httpx.AsyncClient) -> None:
    for entry in (await client.get("/api/models")).json()["models"]:
        _, trained = shipped_or_built(entry["id"])
        assert entry["trained"] is trained
        assert (entry["test_accuracy"] is not None) is trained


async def test_each_model_says_what_it_is_and_how_it_was_trained(
    client: httpx.AsyncClient,
) -> None:
    for entry in (await client.get("/api/models")).json()["models"]:
        assert entry["tagline"] == model.read_spec(entry["id"])["tagline"]
        network, trained = shipped_or_built(entry["id"])
        if not trained:
            assert entry["training"] is None
            continue
        history = network.card["history"]
        training = entry["training"]
        assert training["epochs"] == network.card["epochs"] == len(history)
        assert [h["test_accuracy"] for h in training["history"]] == [
            h["test_accuracy"] for h in history
        ]
        assert training["history"][-1]["epoch"] == len(history)
        assert set(training["history"][0]) == {"epoch", "loss", "train_accuracy", "test_accuracy"}


async def test_settings_choose_the_models(tmp_path) -> None:
    from app.main import create_app
    from app.settings import Settings

    app = create_app(Settings(runs_dir=tmp_path, models=("mnist",)))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            models = (await client.get("/api/models")).json()["models"]
            assert [m["id"] for m in models] == ["mnist"]
            response = await client.get("/api/models/cifar10")
            assert response.status_code == 404
            assert response.json()["detail"] == (
                "There is no model 'cifar10'; this server has mnist."
            )


async def test_one_model(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/models/mnist")
    assert response.status_code == 200 and response.json()["id"] == "mnist"


async def test_conv_weights_are_exact_in_pytorch_layout(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    response = await client.get("/api/models/cifar10/layers/2/weights")
    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["kind"], body["layout"]) == ("conv2", "conv", "FCKK")
    assert body["shape"] == [32, 32, 3, 3]
    layer = served_network(app, "cifar10").layers[2]
    assert np.array_equal(np.array(body["weight"], np.float32), layer.params["weight"])
    assert np.array_equal(np.array(body["bias"], np.float32), layer.params["bias"])


async def test_fc_weights(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/models/cifar10/layers/15/weights")).json()
    assert body["layout"] == "OI" and body["shape"] == [10, 4 * 4 * 128]
    assert np.array(body["weight"]).shape == (10, 2048)


@pytest.mark.parametrize("index", [0, 12, 15])
async def test_weights_npy_whole_and_one_filter(
    client: httpx.AsyncClient, app: FastAPI, index: int
) -> None:
    weight = served_network(app, "cifar10").layers[index].params["weight"]
    whole = await client.get(f"/api/models/cifar10/layers/{index}/weights.npy")
    assert whole.status_code == 200
    assert whole.headers["content-type"] == "application/octet-stream"
    array = np.load(io.BytesIO(whole.content), allow_pickle=False)
    assert array.dtype == np.float32 and np.array_equal(array, weight)
    for k in (0, weight.shape[0] - 1):
        one = await client.get(f"/api/models/cifar10/layers/{index}/weights.npy?filter={k}")
        assert np.array_equal(np.load(io.BytesIO(one.content), allow_pickle=False), weight[k])
        again = await client.get(
            f"/api/models/cifar10/layers/{index}/weights.npy?filter={k}",
            headers={"If-None-Match": one.headers["etag"]},
        )
        assert again.status_code == 304
    past = await client.get(f"/api/models/cifar10/layers/{index}/weights.npy?filter=999")
    assert past.status_code == 404 and "there is no 999" in past.json()["detail"]


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/api/models/cifar10/layers/1/weights.npy", "relu layer and has no weights"),
        ("/api/models/cifar10/layers/1/weights", "relu layer and has no weights"),
        ("/api/models/cifar10/layers/17/weights", "no layer 17"),
        ("/api/models/cifar10/layers/-1/weights.png", "no layer -1"),
        ("/api/models/nope/layers/0/weights", "no model 'nope'"),
        ("/api/models/nope", "no model 'nope'"),
    ],
)
async def test_missing_weights_are_404(client: httpx.AsyncClient, path: str, words: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert words in response.json()["detail"]


@pytest.mark.parametrize(("index", "grid"), [(0, None), (2, (32, 32)), (15, (10, 128))])
async def test_weights_png(client: httpx.AsyncClient, index: int, grid) -> None:
    response = await client.get(f"/api/models/cifar10/layers/{index}/weights.png")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert image.mode == "RGB" and max(image.size) <= 4096
    if grid:  # one row per filter (fc: output), one tile per input slice, 1-pixel gaps
        rows, cols = grid
        width, height = image.size
        assert (height - 1) % rows == 0 and (width - 1) % cols == 0
        assert (height - 1) // rows == (width - 1) // cols  # square tiles


async def test_weights_png_upscale_is_bounded(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/models/cifar10/layers/0/weights.png?upscale=17")
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "Query parameter 'upscale': Input should be less than or equal to 16."
    )
    big = await client.get("/api/models/cifar10/layers/12/weights.png?upscale=16")
    assert big.status_code == 422 and "4096" in big.json()["detail"]


async def test_openapi_documents_the_api(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    for path in (
        "/api/models",
        "/api/models/{model_id}/forward",
        "/api/models/{model_id}/layers/{index}/weights",
        "/api/models/{model_id}/layers/{index}/weights.png",
        "/api/runs/{run_id}",
        "/api/runs/{run_id}/input.png",
        "/api/runs/{run_id}/layers/{index}.png",
        "/api/runs/{run_id}/layers/{index}.json",
        "/api/runs/{run_id}/layers/{index}.npy",
    ):
        assert path in paths, path
    upload = paths["/api/models/{model_id}/forward"]["post"]["requestBody"]["content"]
    assert "image" in upload["multipart/form-data"]["schema"]["properties"]
    schemas = spec["components"]["schemas"]
    assert "ModelList" in schemas
    # Errors are documented as they are sent: {"detail": "<a sentence>"}, 422 included.
    assert schemas["HTTPValidationError"]["properties"]["detail"]["type"] == "string"
    not_found = paths["/api/runs/{run_id}/layers/{index}.json"]["get"]["responses"]["404"]
    assert not_found["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorDetail")
