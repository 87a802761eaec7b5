"""Opt-in diagnostics, off unless a setting turns them on.

CONVSCOPE_WORKER_PID_HEADER=true adds `X-Worker-PID: <pid>` to every answer, so a check of
`convscope serve --workers N` can see which worker process answered (tests/test_multiworker.py).
"""

from __future__ import annotations

import os

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class WorkerPidHeader:
    """ASGI middleware: name the answering process in an X-Worker-PID header."""

    def __init__(self, app: ASGIApp):
        self.app = app
        self.header = (b"x-worker-pid", str(os.getpid()).encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_pid(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), self.header]
            await send(message)

        await self.app(scope, receive, send_with_pid)
