"""`convscope serve`'s HTTP-level bounds (app/serve_options.py): what uvicorn is given, and
a keep-alive connection that outlives common clients' idle expiry (httpx's 5 s)."""

from __future__ import annotations

import os
import socket
import time

import httpx
import pytest

from app import serve_options
from app.bounded_http import BoundedHttpToolsProtocol
from app.cli import build_parser
from app.main import create_app
from app.settings import Settings
from tests.conftest import serve_in_thread


@pytest.fixture(autouse=True)
def own_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn_options writes CONVSCOPE_* variables for the workers: keep them in the test."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CONVSCOPE_")}
    monkeypatch.setattr(os, "environ", environment)


def options(*argv: str) -> dict:
    return serve_options.uvicorn_options(build_parser().parse_args(["serve", *argv]))


def test_the_defaults_bound_heads_and_outlast_clients_idle_expiry() -> None:
    given = options()
    assert given["http"] == "app.bounded_http:BoundedHttpToolsProtocol"
    # httpx (and Node's agent) give up an idle connection after 5 s; the server must wait
    # longer, or a request sent as it closes the connection is lost.
    assert given["timeout_keep_alive"] > httpx.Limits().keepalive_expiry == 5
    assert given["limit_concurrency"] == 2 * Settings().limit_concurrency == 2048


def test_the_options_reach_the_workers_through_the_environment() -> None:
    given = options("--timeout-keep-alive", "31", "--limit-concurrency", "10")
    assert (given["timeout_keep_alive"], given["limit_concurrency"]) == (31, 20)
    settings = Settings()  # what each worker process reads
    assert (settings.timeout_keep_alive, settings.limit_concurrency) == (31, 10)
    assert create_app(settings) is not None


def test_h11_is_given_the_same_head_bound() -> None:
    given = options("--http", "h11")
    assert given["http"] == "h11"
    assert given["h11_max_incomplete_event_size"] == Settings().max_header_bytes


@pytest.mark.slow  # waits out an idle keep-alive
def test_a_connection_idle_past_httpx_expiry_is_still_served(tmp_path) -> None:
    app = create_app(Settings(runs_dir=tmp_path / "runs", models=("cifar10",)))
    config = {
        "http": BoundedHttpToolsProtocol,
        "timeout_keep_alive": options()["timeout_keep_alive"],
    }
    request = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
    with serve_in_thread(app, **config) as address, socket.create_connection(address, 10) as sock:
        sock.sendall(request)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        time.sleep(httpx.Limits().keepalive_expiry + 1)
        sock.sendall(request)  # the same connection: still open
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
