"""An app whose networks pause before each layer, for tests that watch the stream arrive.

    python -m uvicorn --factory tests.slow_app:create_app --port P

CONVSCOPE_TEST_LAYER_DELAY sets the pause in seconds (default 0.1).
"""

import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import main


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


def create_app() -> FastAPI:
    app = main.create_app()
    delay = float(os.environ.get("CONVSCOPE_TEST_LAYER_DELAY", "0.1"))
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with inner(app):
            for served in app.state.registry.models.values():
                served.network = SlowNetwork(served.network, delay)
            yield

    app.router.lifespan_context = lifespan
    return app
