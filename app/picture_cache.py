"""Pictures computed once and served again: a bounded in-memory cache, and ETags.

    response = await cached_picture(request, key, render, gate, cache, headers)

Every picture the server draws is a function of things that do not change: a stored run
(runs are never modified) and the request's parameters, or a model's weights. So a key
naming those things names the bytes, and the ETag is a digest of the key: a browser
holding the picture asks `If-None-Match` and gets 304 without anything being computed,
and a picture asked for again (thirty students opening the same layer) is drawn once per
worker. The cache is an LRU bounded in bytes; a picture larger than a quarter of the
budget is not kept (it would push out everything else), as thumbor's and imgproxy's
caches skip oversized results.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response

from app.gate import ForwardGate


class PictureCache:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.size = 0
        self.hits = self.misses = 0
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return data

    def put(self, key: str, data: bytes) -> None:
        if len(data) * 4 > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = data
            self.size += len(data)
            while self.size > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self.size -= len(old)

    def __len__(self) -> int:
        return len(self._items)


def etag(key: str) -> str:
    return '"' + hashlib.blake2b(key.encode(), digest_size=16).hexdigest() + '"'


def digest(data: bytes | memoryview) -> str:
    """A short digest of some bytes (weights), to put in a key."""
    return hashlib.blake2b(data, digest_size=12).hexdigest()


def _matches(request: Request, tag: str) -> bool:
    sent = request.headers.get("if-none-match", "")
    return sent.strip() == "*" or tag in (
        part.strip().removeprefix("W/") for part in sent.split(",")
    )


async def cached_picture(
    request: Request,
    key: str,
    render: Callable[[], bytes],
    gate: ForwardGate,
    cache: PictureCache,
    headers: dict[str, str],
    media_type: str = "image/png",
) -> Response:
    """304 if the client holds it, the cached bytes, or render() as one of the gate's
    pictures (503 past its places); ETag and the caller's Cache-Control on all of them."""
    tag = etag(key)
    headers = {**headers, "ETag": tag}
    if _matches(request, tag):
        return Response(status_code=304, headers=headers)
    data = cache.get(key)
    if data is None:
        data = await gate.picture(render)
        cache.put(key, data)
    return Response(data, media_type=media_type, headers=headers)


async def get_picture_cache(request: Request) -> PictureCache:
    return request.app.state.picture_cache


PictureCacheDep = Annotated[PictureCache, Depends(get_picture_cache)]
