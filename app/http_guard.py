"""Checks in front of every route: the Host header, how many requests run at once, HEAD.

- Host: with CONVSCOPE_ALLOWED_HOSTS set, a request naming any other host is answered 400.
  A page on an attacker's site whose name is re-pointed at this server (DNS rebinding)
  sends its own name as Host, so it cannot read the API (Starlette's TrustedHostMiddleware
  does the same, with a text answer; ours is the app's JSON sentence).
- Concurrency: past `limit` requests in progress in this worker, 503 with Retry-After, at
  once (uvicorn's own --limit-concurrency answers a bare 503 and also counts idle
  keep-alive connections; `convscope serve` sets it higher, as the last line of defence).
- HEAD: answered wherever GET is, with GET's status and headers and no body (FastAPI
  routes declare GET only).
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

BUSY = "The server is handling too many requests right now; try again in a second."


async def _answer(send: Send, status: int, detail: str, headers: dict[str, str]) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _host(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"host":
            host = value.decode("latin-1")
            if host.startswith("["):  # [::1]:8000
                return host[1:].split("]", 1)[0]
            return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return ""


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    host = host.lower()
    for pattern in allowed:
        pattern = pattern.lower()
        if pattern == "*" or pattern == host:
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
    return False


class GuardMiddleware:
    """Pure ASGI, so streamed responses pass through untouched."""

    def __init__(self, app: ASGIApp, allowed_hosts: tuple[str, ...], limit: int) -> None:
        self.app = app
        self.allowed_hosts = allowed_hosts
        self.limit = limit
        self.active = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not host_allowed(_host(scope), self.allowed_hosts):
            await _answer(send, 400, "This server does not answer for that host name.", {})
            return
        if self.active >= self.limit:
            await _answer(send, 503, BUSY, {"Retry-After": "1"})
            return
        self.active += 1
        try:
            if scope["method"] == "HEAD":
                await self.app({**scope, "method": "GET"}, receive, _without_body(send))
            else:
                await self.app(scope, receive, send)
        finally:
            self.active -= 1


def _without_body(send: Send) -> Send:
    async def head_send(message: Message) -> None:
        if message["type"] == "http.response.body":
            if message.get("more_body", False):
                return
            message = {"type": "http.response.body", "body": b""}
        await send(message)

    return head_send
