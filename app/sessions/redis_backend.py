"""Sessions in Redis, for several workers or machines serving one class.

    convscope:sessions                   sorted set: code -> when it expires (counts them)
    convscope:session:CODE               hash: the token's SHA-256, when it was made
    convscope:session:CODE:state         the presenter's view, JSON text
    convscope:session:CODE:followers     sorted set: follower -> when it was last seen
    convscope:session:CODE:wall          list of the wall's entries, JSON, oldest first
    convscope:session:CODE:pngs          hash: entry id -> its picture
    convscope:events:CODE                pub/sub channel: b"s" + a new state, or b"e" (ended)

Every key of a session carries the same expiry, renewed whenever the presenter or a
submission touches it, so Redis itself forgets a quiet session. Each process subscribes
once to convscope:events:* and hands what arrives to its own followers (backend.Hub); after
a lost connection it subscribes again and sends its followers the current state, which
they may have missed. A follower counts as connected while it was seen within three
keep-alive periods, so a worker that died stops being counted without anyone cleaning up.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from app.sessions import codes
from app.sessions.backend import (
    Follower,
    Full,
    Limits,
    SessionBackend,
    SessionNotFound,
    WrongToken,
    now,
)

log = logging.getLogger(__name__)

PREFIX = "convscope:"
SESSIONS = PREFIX + "sessions"
CHANNELS = PREFIX + "events:*"
RECONNECT_SECONDS = 1.0
# A burst of a whole class joining at once waits its turn here rather than failing with
# redis-py's "Too many connections" (its blocking pool lost waiters under such a burst).
COMMANDS_AT_ONCE = 64


def _limited(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(method)
    async def limited(self: RedisBackend, *args: Any, **kwargs: Any) -> Any:
        async with self._slots:
            return await method(self, *args, **kwargs)

    return limited


def _key(code: str, part: str = "") -> str:
    return f"{PREFIX}session:{code}" + (f":{part}" if part else "")


def _keys(code: str) -> list[str]:
    return [_key(code), *(_key(code, p) for p in ("state", "followers", "wall", "pngs"))]


def _channel(code: str) -> str:
    return f"{PREFIX}events:{code}"


class RedisBackend(SessionBackend):
    def __init__(self, client: Any, limits: Limits):
        super().__init__(limits)
        self.client = client
        self.worker = uuid.uuid4().hex[:12]
        self._listener: asyncio.Task | None = None
        self._subscribed = asyncio.Event()
        self._slots = asyncio.Semaphore(COMMANDS_AT_ONCE)

    @classmethod
    async def connect(cls, url: str, limits: Limits) -> RedisBackend:
        """Connected and subscribed; ConnectionError (redis-py's) if Redis is not there."""
        import redis.asyncio as redis

        # The pool has room for every command `_limited` lets through, plus pub/sub.
        client = redis.Redis.from_url(
            url, max_connections=COMMANDS_AT_ONCE + 8, socket_connect_timeout=5
        )
        await client.ping()
        backend = cls(client, limits)
        backend._listener = asyncio.create_task(backend._listen())
        await asyncio.wait_for(backend._subscribed.wait(), 10)
        return backend

    async def close(self) -> None:
        await super().close()
        if self._listener:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self.client.aclose()

    async def _listen(self) -> None:
        first = True
        while True:
            try:
                async with self.client.pubsub() as pubsub:
                    await pubsub.psubscribe(CHANNELS)
                    self._subscribed.set()
                    if not first:
                        await self._resend_states()
                    first = False
                    async for message in pubsub.listen():
                        if message["type"] == "pmessage":
                            self._deliver(message["channel"], message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a lost connection: subscribe again
                log.warning("Redis pub/sub connection lost (%s); reconnecting", error)
                await asyncio.sleep(RECONNECT_SECONDS)

    def _deliver(self, channel: bytes, data: bytes) -> None:
        code = channel.decode().rsplit(":", 1)[1]
        if data[:1] == b"s":
            self.hub.publish(code, data[1:].decode())
        elif data[:1] == b"e":
            self.hub.end(code)

    async def _resend_states(self) -> None:
        for code in self.hub.codes():
            state = await self.client.get(_key(code, "state"))
            if state is None and not await self.client.exists(_key(code)):
                self.hub.end(code)
            elif state is not None:
                self.hub.publish(code, state.decode())

    async def _touch(self, code: str) -> None:
        seconds = int(self.limits.idle_seconds)
        async with self.client.pipeline(transaction=False) as pipe:
            for key in _keys(code):
                pipe.expire(key, seconds)
            pipe.zadd(SESSIONS, {code: now() + seconds})
            await pipe.execute()

    async def _token_hash(self, code: str) -> str:
        stored = await self.client.hget(_key(code), "token")
        if stored is None:
            raise SessionNotFound(code)
        return stored.decode()

    @_limited
    async def create(self) -> tuple[str, str]:
        await self.client.zremrangebyscore(SESSIONS, "-inf", now())
        if await self.client.zcard(SESSIONS) >= self.limits.max_sessions:
            first = await self.client.zrange(SESSIONS, 0, 0, withscores=True)
            wait = int(first[0][1] - now()) + 1 if first else 60
            raise Full(
                f"This server already holds {self.limits.max_sessions} class sessions "
                "(CONVSCOPE_MAX_SESSIONS); end one, or wait for a quiet one to expire.",
                retry_after=max(1, wait),
            )
        token = codes.new_token()
        while True:
            code = codes.new_code()
            if await self.client.hsetnx(_key(code), "token", codes.token_hash(token)):
                break
        await self.client.hset(_key(code), "created", str(now()))
        await self._touch(code)
        return code, token

    @_limited
    async def authorize(self, code: str, token: str) -> None:
        if not codes.token_matches(token, await self._token_hash(code)):
            raise WrongToken(code)
        await self._touch(code)

    @_limited
    async def set_state(self, code: str, state: str) -> None:
        await self._token_hash(code)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(_key(code, "state"), state, ex=int(self.limits.idle_seconds))
            pipe.publish(_channel(code), b"s" + state.encode())
            await pipe.execute()

    @_limited
    async def state(self, code: str) -> str | None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.exists(_key(code))
            pipe.get(_key(code, "state"))
            exists, state = await pipe.execute()
        if not exists:
            raise SessionNotFound(code)
        return state.decode() if state is not None else None

    def _member(self, follower: Follower) -> str:
        return f"{self.worker}:{follower.id}"

    def _stale(self) -> float:
        return now() - 3 * self.limits.keepalive_seconds

    @_limited
    async def still_open(self, code: str, follower: Follower) -> bool:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.exists(_key(code))
            pipe.zadd(_key(code, "followers"), {self._member(follower): now()}, xx=True)
            exists, _ = await pipe.execute()
        return bool(exists)

    @_limited
    async def follower_count(self, code: str) -> int:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.exists(_key(code))
            pipe.zcount(_key(code, "followers"), self._stale(), "+inf")
            exists, count = await pipe.execute()
        if not exists:
            raise SessionNotFound(code)
        return count

    @_limited
    async def _join(self, code: str, follower: Follower) -> str | None:
        key = _key(code, "followers")
        # One round trip: a burst of a whole class joining at once stays cheap.
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.exists(_key(code))
            pipe.zremrangebyscore(key, "-inf", self._stale())
            pipe.zcard(key)
            pipe.zadd(key, {self._member(follower): now()})
            pipe.expire(key, int(self.limits.idle_seconds))
            pipe.get(_key(code, "state"))
            exists, _, before, _, _, state = await pipe.execute()
        if not exists:
            await self.client.zrem(key, self._member(follower))
            raise SessionNotFound(code)
        if before >= self.limits.max_followers:
            await self.client.zrem(key, self._member(follower))
            raise Full(
                f"This session already has {self.limits.max_followers} followers "
                "(CONVSCOPE_MAX_FOLLOWERS).",
                retry_after=self.limits.keepalive_seconds.__ceil__(),
            )
        return state.decode() if state is not None else None

    @_limited
    async def _leave(self, code: str, follower: Follower) -> None:
        with contextlib.suppress(Exception):  # Redis gone: the entry goes stale by itself
            await self.client.zrem(_key(code, "followers"), self._member(follower))

    @_limited
    async def add_submission(self, code: str, entry: dict[str, Any], png: bytes) -> None:
        await self._token_hash(code)
        wall, pngs = _key(code, "wall"), _key(code, "pngs")
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.rpush(wall, json.dumps(entry))
            pipe.hset(pngs, entry["id"], png)
            pipe.llen(wall)
            length = (await pipe.execute())[-1]
        excess = length - self.limits.max_submissions
        if excess > 0:
            dropped = await self.client.lpop(wall, excess) or []
            ids = [json.loads(item)["id"] for item in dropped]
            if ids:
                await self.client.hdel(pngs, *ids)
        await self._touch(code)

    @_limited
    async def submissions(self, code: str) -> list[dict[str, Any]]:
        await self._token_hash(code)
        return [json.loads(item) for item in await self.client.lrange(_key(code, "wall"), 0, -1)]

    @_limited
    async def submission_png(self, code: str, entry_id: str) -> bytes:
        await self._token_hash(code)
        png = await self.client.hget(_key(code, "pngs"), entry_id)
        if png is None:
            raise KeyError(entry_id)
        return png

    @_limited
    async def end(self, code: str) -> None:
        await self._token_hash(code)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(*_keys(code))
            pipe.zrem(SESSIONS, code)
            pipe.publish(_channel(code), b"e")
            await pipe.execute()
