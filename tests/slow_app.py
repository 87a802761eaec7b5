"""Apps whose networks wait before each layer, for tests that watch the stream arrive.

    python -m uvicorn --factory tests.slow_app:create_app --port P

With CONVSCOPE_TEST_GATE_DIR=DIR, the network computes layer i only once the file DIR/go-<i>
exists (the test creates it when it has read what it waited for; after GATE_SECONDS the run
fails) and writes DIR/ended when its run ends, however it ends. Otherwise it pauses
CONVSCOPE_TEST_LAYER_DELAY seconds (default 0.1) before each layer.
"""

import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from app import main

GATE_SECONDS = 60


class SlowNetwork:
    def __init__(self, network, delay: float):
        self._network = network
        self._delay = delay

    def __getattr__(self, name: str):
        return getattr(self._network, name)

    def forward_iter(self, x) -> Iterator:
        for item in self._network.forward_iter(x):
            time.sleep(self._delay)
            yield item


class GatedNetwork:
    """Computes layer i only once wait(i) returns; calls ended() when its run ends."""

    def __init__(self, network, wait: Callable[[int], None], ended: Callable[[], None]):
        self._network = network
        self._wait = wait
        self._ended = ended

    def __getattr__(self, name: str):
        return getattr(self._network, name)

    def forward_iter(self, x) -> Iterator:
        layers = self._network.forward_iter(x)
        try:
            for index in range(len(self._network.layers)):
                self._wait(index)
                yield next(layers)
        finally:
            self._ended()


def file_gate(directory: Path) -> tuple[Callable[[int], None], Callable[[], None]]:
    """wait(i) returns once directory/go-<i> exists; ended() writes directory/ended."""

    def wait(index: int) -> None:
        go = directory / f"go-{index}"
        deadline = time.monotonic() + GATE_SECONDS
        while not go.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"nobody created {go}")
            time.sleep(0.01)

    return wait, lambda: (directory / "ended").touch()


def create_app() -> FastAPI:
    app = main.create_app()
    gate_dir = os.environ.get("CONVSCOPE_TEST_GATE_DIR")
    delay = float(os.environ.get("CONVSCOPE_TEST_LAYER_DELAY", "0.1"))
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with inner(app):
            for served in app.state.registry.models.values():
                if gate_dir:
                    served.network = GatedNetwork(served.network, *file_gate(Path(gate_dir)))
                else:
                    served.network = SlowNetwork(served.network, delay)
            yield

    app.router.lifespan_context = lifespan
    return app
