"""A forward place is given back however the response ends, also when the client is gone
before the first byte, so the stream itself never starts (issue 12, item 2).

The app is driven in-process through ASGI, with a `send` that never completes (the client
stopped reading) or that fails at once (the connection is closed), so the response is
cancelled before its body iterator runs: only a release outside the stream can run."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from fastapi import FastAPI
from starlette.requests import ClientDisconnect

from app.main import create_app
from app.settings import Settings
from benchmarks import hostile_corpus as corpus

URL = "/api/models/cifar10/forward"


def scope(body: bytes, content_type: str, spec_version: str) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": spec_version},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": URL,
        "raw_path": URL.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


def receiver(body: bytes) -> Callable[[], Awaitable[dict]]:
    """The whole body, then a disconnect: the client hung up right after the upload."""
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict:
        if messages:
            return messages.pop(0)
        return {"type": "http.disconnect"}

    return receive


async def send_that_never_completes(message: dict) -> None:
    await asyncio.Event().wait()


async def send_that_fails(message: dict) -> None:
    raise OSError("the connection is closed")


@pytest.mark.parametrize(
    ("spec_version", "send"),
    [("2.3", send_that_never_completes), ("2.4", send_that_fails)],
    ids=["disconnect-while-blocked", "closed-connection"],
)
async def test_a_client_gone_before_the_first_byte_leaves_every_place_free(
    tmp_path: Path, spec_version: str, send
) -> None:
    app: FastAPI = create_app(
        Settings(runs_dir=tmp_path / "runs", models=("cifar10",), max_concurrent_forwards=2)
    )
    body, content_type = corpus.upload("png", corpus.encode(corpus.picture(), "PNG"), 200).body()
    async with app.router.lifespan_context(app):
        gate = app.state.forward_gate
        for _ in range(3):  # more than the places: a leak would show as a 503 below too
            try:
                await asyncio.wait_for(
                    app(scope(body, content_type, spec_version), receiver(body), send), 60
                )
            except ClientDisconnect:
                assert spec_version == "2.4"  # the failed send, raised out of the response
            assert gate.active == 0
        assert app.state.upload_budget.active == 0
        assert app.state.upload_budget.held == 0
        assert gate.pictures == 0
