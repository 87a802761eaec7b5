"""Shared fixtures: the app and an httpx client, a real server in a subprocess, Chromium."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, sync_playwright

from app.main import create_app
from app.settings import Settings

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
INSTALL_CHROMIUM = "install Chromium: apt-get install -y chromium"
SERVER_START_SECONDS = 30


@pytest.fixture(autouse=True, scope="session")
def _no_imported_models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests and the servers they start never see models this machine's user imported
    (CONVSCOPE_MODELS_DIR, ~/.local/share/convscope/models); tests that want some set it."""
    patch = pytest.MonkeyPatch()
    patch.setenv("CONVSCOPE_MODELS_DIR", str(tmp_path_factory.mktemp("no-imported-models")))
    yield
    patch.undo()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # One compute process, not one per core: forwards take the same path (app/compute_pool.py)
    # and each app starts one process instead of two.
    return Settings(runs_dir=tmp_path / "runs", models_dir=tmp_path / "models", compute_processes=1)


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client calling the app in-process, with its lifespan running (as a server)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def free_port() -> Callable[[], int]:
    """A function returning a TCP port on 127.0.0.1 that nothing listens on right now."""
    return _free_port


@contextmanager
def _server(command: Sequence[str], **popen: Any) -> Iterator[str]:
    port = _free_port()
    # A file, not a pipe: nobody reads a pipe while the server runs, and a full one blocks it.
    log = tempfile.TemporaryFile(mode="w+")
    process = subprocess.Popen(
        [*command, "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, **popen
    )
    base_url = f"http://127.0.0.1:{port}"

    def output() -> str:
        log.seek(0)
        return log.read()

    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"server exited with {process.returncode}:\n{output()}")
            try:
                if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"server did not answer /healthz in {SERVER_START_SECONDS} s:\n{output()}"
                )
            time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@contextmanager
def serve_in_thread(app: Any, **config: Any) -> Iterator[tuple[str, int]]:
    """An ASGI app served by uvicorn in a thread on a free port, for as long as the block
    runs; its (host, port)."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", **config)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_SECONDS
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield server.servers[0].sockets[0].getsockname()[:2]
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def run_server() -> Callable[..., AbstractContextManager[str]]:
    """`with run_server([cmd, ...], cwd=..., env=...) as base_url:` runs a `serve` command
    on a free port (appending --port), waits for /healthz, and always stops it."""
    return _server


@pytest.fixture(scope="session")
def live_server() -> Iterator[str]:
    """The base URL of a real server (`python -m app serve`), shared by the session."""
    with _server([sys.executable, "-m", "app", "serve"]) as base_url:
        yield base_url


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """The system Chromium. Without it: skip locally, fail in CI (browser tests must run)."""
    for name in CHROMIUM_NAMES:
        if path := shutil.which(name):
            return path
    if _in_ci():
        pytest.fail(f"browser tests must run in CI; {INSTALL_CHROMIUM}")
    pytest.skip(INSTALL_CHROMIUM)


# A test using one of these starts a server or a browser: it is `slow`, whatever it says.
SLOW_FIXTURES = {"run_server", "live_server", "chromium_path", "browser", "page"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        # A test marked `browser` needs Chromium even if it asks for no browser fixture.
        if item.get_closest_marker("browser") and "chromium_path" not in item.fixturenames:
            item.fixturenames.append("chromium_path")
        if SLOW_FIXTURES.intersection(item.fixturenames) and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Browser]:
    """A headless Playwright Chromium browser, shared by a test module.

    Not by the session: Playwright's sync API runs an event loop in this thread while it
    is open, and later tests that call asyncio.run would fail under it."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser page; its context is closed afterwards."""
    context = browser.new_context()
    yield context.new_page()
    context.close()


INSTALL_REDIS = "install Redis: apt-get install -y redis-server"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A real redis-server of our own on a free port (no disk), its URL. Without the
    binary: skip locally, fail in CI (as the browser tests do)."""
    binary = shutil.which("redis-server")
    if binary is None:
        if _in_ci():
            pytest.fail(f"Redis tests must run in CI; {INSTALL_REDIS}")
        pytest.skip(INSTALL_REDIS)
    port = _free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server did not start on port {port}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The test Redis, emptied for this test."""
    with socket.create_connection(
        ("127.0.0.1", int(redis_server.split(":")[2].split("/")[0]))
    ) as s:
        s.sendall(b"FLUSHALL\r\n")
        s.recv(16)
    return redis_server
