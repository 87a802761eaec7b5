"""HTTP-level bounds (issue 13): pictures cached with ETags and bounded in number, HEAD
where GET, Host checking, the concurrency limit, security headers, upload deadlines."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app import heatmap, render
from app.main import create_app
from app.settings import Settings
from benchmarks import hostile_corpus as corpus

UPLOAD = "/api/models/cifar10/forward"


def client_for(tmp_path: Path, **options) -> httpx.AsyncClient:
    app = create_app(Settings(runs_dir=tmp_path / "runs", models=("cifar10",), **options))

    class Client(httpx.AsyncClient):
        async def __aenter__(self):
            self._lifespan = app.router.lifespan_context(app)
            await self._lifespan.__aenter__()
            await super().__aenter__()
            self.app = app
            return self

        async def __aexit__(self, *exc):
            await super().__aexit__(*exc)
            await self._lifespan.__aexit__(*exc)

    return Client(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def a_run(client: httpx.AsyncClient) -> str:
    files = {"image": ("a.png", corpus.encode(corpus.picture(), "PNG"), "image/png")}
    response = await client.post(UPLOAD, files=files)
    assert response.status_code == 200
    return response.headers["x-run-id"]


@pytest.mark.parametrize(
    ("module", "drawer", "path", "others"),
    [
        (render, "volume_png", "layers/0.png", ["upscale=5", "upscale=4&slice=1"]),
        (
            heatmap,
            "overlay_png",
            "attributions/saliency.png",
            ["upscale=5", "upscale=4&alpha=0.2", "upscale=4&target=1"],
        ),
    ],
    ids=["layer", "attribution"],
)
async def test_run_pictures_are_drawn_once_then_cached_and_revalidated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module, drawer, path, others
) -> None:
    drawn = []
    real = getattr(module, drawer)
    monkeypatch.setattr(module, drawer, lambda *a, **k: drawn.append(1) or real(*a, **k))
    async with client_for(tmp_path) as client:
        run = await a_run(client)
        url = f"/api/runs/{run}/{path}?upscale=4"
        first, second = await client.get(url), await client.get(url)
        assert first.status_code == second.status_code == 200
        assert first.content == second.content and len(drawn) == 1
        assert first.headers.get("x-attribution-range") == second.headers.get("x-attribution-range")
        tag = first.headers["etag"]
        assert first.headers["cache-control"].startswith("private, max-age=")
        again = await client.get(url, headers={"If-None-Match": tag})
        assert again.status_code == 304 and again.content == b"" and len(drawn) == 1
        for query in others:
            other = await client.get(f"/api/runs/{run}/{path}?{query}")
            assert other.status_code == 200 and other.headers["etag"] != tag, query
        assert len(drawn) == 1 + len(others)


async def test_weights_pictures_are_cached_publicly_and_revalidated(tmp_path: Path) -> None:
    async with client_for(tmp_path) as client:
        weights = await client.get("/api/models/cifar10/layers/0/weights.png?upscale=8")
        assert weights.status_code == 200 and weights.headers["etag"]
        assert "public" in weights.headers["cache-control"]
        same = await client.get(
            "/api/models/cifar10/layers/0/weights.png?upscale=8",
            headers={"If-None-Match": weights.headers["etag"]},
        )
        assert same.status_code == 304
        exact = await client.get("/api/models/cifar10/layers/0/weights")
        assert exact.json()["shape"] == [32, 3, 3, 3] and exact.headers["etag"]


PICTURES = [
    "/api/runs/{run}/layers/0.png",
    "/api/runs/{run}/input.png?upscale=16",
    "/api/runs/{run}/attributions/saliency.png?upscale=16",
    "/api/models/cifar10/layers/0/weights.png?upscale=16",
    "/api/models/cifar10/layers/0/weights",
]


async def test_pictures_past_their_places_get_503_with_retry_after(tmp_path: Path) -> None:
    async with client_for(tmp_path, max_concurrent_pictures=1) as client:
        run = await a_run(client)
        # The attribution's map itself is computed (and kept) on a forward place.
        assert (await client.get(f"/api/runs/{run}/attributions/saliency.json")).is_success
        gate = client.app.state.forward_gate
        for url in (url.format(run=run) for url in PICTURES):
            gate.pictures = 1  # one picture being drawn
            busy = await client.get(url)
            assert busy.status_code == 503 and busy.headers["retry-after"] == "1", url
            assert busy.json()["detail"].endswith(".")
            gate.pictures = 0
            assert (await client.get(url)).status_code == 200, url


async def test_head_is_answered_where_get_is(tmp_path: Path) -> None:
    async with client_for(tmp_path) as client:
        run = await a_run(client)
        for url in ["/healthz", "/api/models", f"/api/runs/{run}/layers/1.png", "/"]:
            get, head = await client.get(url), await client.head(url)
            assert head.status_code == get.status_code == 200, url
            assert head.content == b""
            assert head.headers["content-type"] == get.headers["content-type"]


async def test_hosts_outside_the_allowed_ones_get_400(tmp_path: Path) -> None:
    async with client_for(tmp_path, allowed_hosts=("convscope.school", "*.lan")) as client:
        assert (await client.get("/healthz", headers={"host": "convscope.school"})).is_success
        assert (await client.get("/healthz", headers={"host": "room4.lan:8000"})).is_success
        evil = await client.get("/healthz", headers={"host": "attacker.example"})
        assert evil.status_code == 400
        assert evil.json() == {"detail": "This server does not answer for that host name."}


async def test_past_the_concurrency_limit_503_with_retry_after(tmp_path: Path) -> None:
    async with client_for(tmp_path, limit_concurrency=1) as client:
        assert (await client.get("/healthz")).status_code == 200  # builds the middleware
        guard = client.app.middleware_stack
        while not hasattr(guard, "limit"):
            guard = guard.app
        guard.active = 1
        busy = await client.get("/healthz")
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        guard.active = 0
        assert (await client.get("/healthz")).status_code == 200


async def test_security_headers(tmp_path: Path) -> None:
    async with client_for(tmp_path) as client:
        response = await client.get("/")
        assert response.headers["cross-origin-opener-policy"] == "same-origin"
        assert response.headers["cross-origin-resource-policy"] == "same-origin"
        assert "camera=(self)" in response.headers["permissions-policy"]
        assert "microphone=()" in response.headers["permissions-policy"]


async def trickle(body: bytes, pause: float) -> AsyncIterator[bytes]:
    for i in range(len(body)):
        yield body[i : i + 1]
        await asyncio.sleep(pause)


async def test_a_trickling_upload_is_refused_for_its_rate(tmp_path: Path) -> None:
    body, content_type = corpus.upload("x", corpus.encode(corpus.picture(), "PNG"), 200).body()
    async with client_for(tmp_path, upload_min_bytes_per_second=100_000) as client:
        from app import upload

        upload.RATE_GRACE_SECONDS, grace = 0.2, upload.RATE_GRACE_SECONDS
        try:
            response = await client.post(
                UPLOAD, content=trickle(body, 0.01), headers={"content-type": content_type}
            )
        finally:
            upload.RATE_GRACE_SECONDS = grace
        assert response.status_code == 408
        assert "slower than" in response.json()["detail"]
        assert client.app.state.upload_budget.active == 0
        assert client.app.state.forward_gate.active == 0


async def test_an_upload_must_arrive_whole_within_its_deadline(tmp_path: Path) -> None:
    body, content_type = corpus.upload("x", corpus.encode(corpus.picture(), "PNG"), 200).body()
    async with client_for(tmp_path, upload_seconds=0.5, upload_idle_seconds=5) as client:
        response = await client.post(
            UPLOAD, content=trickle(body, 0.05), headers={"content-type": content_type}
        )
        assert response.status_code == 408
        assert "within 0.5 seconds" in response.json()["detail"]


async def test_uploads_past_the_byte_budget_get_503(tmp_path: Path) -> None:
    body, content_type = corpus.upload("x", corpus.encode(corpus.picture(), "PNG"), 200).body()
    async with client_for(tmp_path, upload_buffer_bytes=100) as client:
        response = await client.post(UPLOAD, content=body, headers={"content-type": content_type})
        assert response.status_code == 503 and response.headers["retry-after"] == "2"
        assert client.app.state.upload_budget.held == 0
