"""Hostile and odd uploads (benchmarks/hostile_corpus.py): each gets its documented status with a
JSON sentence, never a 500, and the filename never comes back, in the app and in a real
uvicorn, including bodies that stop halfway."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from fastapi import HTTPException, Request
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from app.main import create_app
from app.settings import Settings
from app.upload import read_file_field
from benchmarks import hostile_corpus as corpus

REPO = Path(__file__).resolve().parents[1]
URL = "/api/models/cifar10/forward"
CASES = corpus.cases()
BY_NAME = {case.name: case for case in CASES}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    """One app for the module (its lifespan loads the models once)."""
    settings = Settings(runs_dir=tmp_path_factory.mktemp("runs"), models=("cifar10",))
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        # ASGITransport re-raises anything unhandled: a 500 would fail loudly.
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


def leaked(case: corpus.Case, response: httpx.Response) -> list[str]:
    """The hostile strings of `case` that appear in the response's body or headers."""
    needles = {"<script", corpus.SCRIPT}
    needles |= {part.filename for part in case.parts if part.filename and len(part.filename) > 8}
    haystacks = [response.text, *(f"{k}: {v}" for k, v in response.headers.items())]
    return sorted(n for n in needles if any(n in hay for hay in haystacks))


def check(case: corpus.Case, response: httpx.Response) -> None:
    assert response.status_code in case.expected, (case.name, response.text[:300])
    assert not leaked(case, response), case.name
    if response.status_code == 200:
        assert response.headers["content-type"] == "application/x-ndjson"
        last = json.loads(response.text.splitlines()[-1])
        assert last["type"] == "scores", (case.name, last)
        return
    assert response.headers["content-type"] == "application/json", case.name
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail.endswith("."), (case.name, detail)
    assert "Traceback" not in detail and 'File "' not in detail, (case.name, detail)
    if response.status_code == 503:
        assert response.headers["retry-after"] in ("1", "2")


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_each_case_gets_its_documented_status(
    client: httpx.AsyncClient, case: corpus.Case
) -> None:
    body, content_type = case.body()
    response = await client.post(URL, content=body, headers={"content-type": content_type})
    check(case, response)
    if response.status_code == 200:
        run_id = response.headers["x-run-id"]
        again = await client.get(f"/api/runs/{run_id}")
        assert again.status_code == 200 and not leaked(case, again)
    assert client.app.state.forward_gate.active == 0  # type: ignore[attr-defined]


@pytest.mark.asyncio(loop_scope="module")
async def test_the_11mb_exif_jpeg_is_refused_by_the_marker_walk_under_a_larger_limit(
    tmp_path: Path,
) -> None:
    """Under a 12 MiB upload limit, its 170 EXIF segments are refused (Pillow would join
    them at a quadratic cost: 2 s of copying) before any decoder runs."""
    case = corpus.upload("exif-11mb", corpus.jpeg_with_app1_segments(11 * corpus.MIB), 413)
    app = create_app(Settings(runs_dir=tmp_path, models=("cifar10",), max_upload_bytes=12 << 20))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            body, content_type = case.body()
            check(
                case, await client.post(URL, content=body, headers={"content-type": content_type})
            )


@pytest.mark.asyncio(loop_scope="module")
async def test_an_upload_that_stops_arriving_gets_408_and_gives_its_place_back(
    tmp_path: Path,
) -> None:
    body, content_type = BY_NAME["one-pixel"].body()

    async def stalls() -> AsyncIterator[bytes]:
        yield body[: len(body) // 2]
        await asyncio.sleep(30)
        yield body[len(body) // 2 :]

    settings = Settings(runs_dir=tmp_path, models=("cifar10",), upload_idle_seconds=0.3)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            started = time.monotonic()
            response = await client.post(
                URL, content=stalls(), headers={"content-type": content_type}
            )
            assert time.monotonic() - started < 10
            assert response.status_code == 408
            assert "stopped arriving" in response.json()["detail"]
            assert app.state.forward_gate.active == 0


# --- a real server ---------------------------------------------------------------------

SERVER = [sys.executable, "-m", "app", "serve"]


def server_env(tmp_path: Path, **variables: str) -> dict[str, str]:
    return {
        **os.environ,
        "CONVSCOPE_RUNS_DIR": str(tmp_path / "runs"),
        "CONVSCOPE_MODELS": "cifar10",
        **variables,
    }


def half_body(base_url: str, case: corpus.Case) -> socket.socket:
    """A socket that sent the headers, promising more than half the body it then sent."""
    body, content_type = case.body()
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    head = (
        f"POST {URL} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body) + 4096}\r\n\r\n"
    )
    sock.sendall(head.encode() + body[: len(body) // 2])
    return sock


def read_until_closed(sock: socket.socket) -> str:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received.decode("latin-1")


def upload(base_url: str, case: corpus.Case) -> httpx.Response:
    body, content_type = case.body()
    headers = {"content-type": content_type}
    return httpx.post(base_url + URL, content=body, headers=headers, timeout=30)


def test_real_server_survives_bodies_that_stop_halfway(run_server, tmp_path: Path) -> None:
    case = BY_NAME["one-pixel"]
    env = server_env(
        tmp_path, CONVSCOPE_UPLOAD_IDLE_SECONDS="2", CONVSCOPE_MAX_CONCURRENT_FORWARDS="2"
    )
    with run_server(SERVER, cwd=REPO, env=env) as base_url:
        # Send half, then hang up: the server notices, and keeps answering.
        for _ in range(8):
            half_body(base_url, case).close()
        assert httpx.get(base_url + "/healthz", timeout=10).status_code == 200
        check(case, upload(base_url, case))

        # Send half, then wait: they hold no forward place (the body is read first), so
        # real uploads go on; each is given up at the idle timeout.
        stalled = [half_body(base_url, case) for _ in range(2)]
        for _ in range(3):
            check(case, upload(base_url, case))
        for sock in stalled:
            answer = read_until_closed(sock)
            assert answer.startswith("HTTP/1.1 408 "), answer[:200]
            assert '{"detail":"The upload stopped arriving' in answer
            sock.close()
        assert httpx.get(base_url + "/healthz", timeout=10).status_code == 200


@pytest.mark.slow
def test_real_server_bounds_uploads_being_received(run_server, tmp_path: Path) -> None:
    """Past CONVSCOPE_MAX_CONCURRENT_UPLOADS bodies arriving at once, 503 + Retry-After;
    the places come back when the stalled ones are given up."""
    case = BY_NAME["one-pixel"]
    env = server_env(
        tmp_path, CONVSCOPE_UPLOAD_IDLE_SECONDS="2", CONVSCOPE_MAX_CONCURRENT_UPLOADS="2"
    )
    with run_server(SERVER, cwd=REPO, env=env) as base_url:
        stalled = [half_body(base_url, case) for _ in range(2)]
        deadline = time.monotonic() + 1.5
        while (busy := upload(base_url, case)).status_code != 503:
            assert time.monotonic() < deadline, "the stalled uploads never took their places"
        assert busy.headers["retry-after"] == "2"
        assert "receiving too many uploads" in busy.json()["detail"]
        for sock in stalled:
            assert read_until_closed(sock).startswith("HTTP/1.1 408 ")
            sock.close()
        deadline = time.monotonic() + 10
        while (response := upload(base_url, case)).status_code == 503:
            assert time.monotonic() < deadline, "the stalled uploads kept their places"
            time.sleep(0.1)
        check(case, response)


REAL_SERVER_CASES = [
    "zero-bytes", "png-bomb", "jpeg-bomb", "pdf-renamed-png", "svg", "hostile-filename",
    "hostile-filename-not-image", "two-files", "missing-field", "unterminated-multipart",
    "wrong-request-content-type", "exif-60kb-jpeg", "png-16-bit",
]  # fmt: skip


def test_real_server_answers_a_selection_of_the_corpus(run_server, tmp_path: Path) -> None:
    with run_server(SERVER, cwd=REPO, env=server_env(tmp_path)) as base_url:
        for name in REAL_SERVER_CASES:
            check(BY_NAME[name], upload(base_url, BY_NAME[name]))
        assert httpx.get(base_url + "/healthz", timeout=10).status_code == 200


# --- the multipart reader, on any body ---------------------------------------------------

PIECES = [
    f"--{corpus.BOUNDARY}\r\n".encode(),
    f"--{corpus.BOUNDARY}--\r\n".encode(),
    b'Content-Disposition: form-data; name="image"; filename="a.png"\r\n',
    b'Content-Disposition: form-data; name="image"\r\n',
    b'Content-Disposition: form-data; name="other"\r\n',
    b"Content-Type: image/png\r\n",
    b"\r\n",
    b"\r\n\r\n",
    BY_NAME["one-pixel"].data,
]


def request_with(body: bytes, content_type: str) -> Request:
    chunks = [body[i : i + 7] for i in range(0, len(body), 7)] or [b""]

    async def receive() -> dict:
        chunk = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    headers = [(b"content-type", content_type.encode())]
    return Request({"type": "http", "method": "POST", "headers": headers}, receive)


def well_formed(parts: list[corpus.Part], cut: int | None) -> bytes:
    body = corpus.Case("form", tuple(parts), frozenset()).body()[0]
    return body if cut is None else body[:cut]


form_parts = st.builds(
    corpus.Part,
    name=st.sampled_from(["image", "other", "", "imag\u00e9"]),
    filename=st.one_of(st.none(), st.text(max_size=12)),
    data=st.one_of(st.binary(max_size=5000), st.just(BY_NAME["one-pixel"].data)),
    content_type=st.one_of(st.none(), st.sampled_from(["image/png", "text/html", "x"])),
)
bodies = st.one_of(
    st.builds(
        b"".join,
        st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=64)), max_size=12),
    ),
    st.builds(
        well_formed, st.lists(form_parts, max_size=4), st.one_of(st.none(), st.integers(0, 6000))
    ),
)


@hypothesis_settings(max_examples=150, deadline=None)
@given(
    body=bodies,
    declared_boundary=st.sampled_from([corpus.BOUNDARY] * 3 + ["", "x", f'"{corpus.BOUNDARY}"']),
)
def test_any_multipart_body_gives_the_field_or_a_4xx_sentence(
    body: bytes, declared_boundary: str
) -> None:
    content_type = f"multipart/form-data; boundary={declared_boundary}"
    request = request_with(body, content_type)
    try:
        data = asyncio.run(read_file_field(request, "image", limit=4096, idle_seconds=5))
    except HTTPException as error:
        assert error.status_code in (400, 413, 415, 422)
        assert isinstance(error.detail, str) and error.detail.endswith(".")
    else:
        assert isinstance(data, bytes) and len(data) <= 4096
