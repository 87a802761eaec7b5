"""Choose the stores when the app starts: in this process by default, Redis when
CONVSCOPE_REDIS_URL is set (sessions and runs both, so that every worker and machine
sees the same ones). A set URL that does not answer stops the start with a sentence
rather than falling back: a class split between workers that cannot see each other is
worse than a server that says why it will not start."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from app.sessions.backend import Limits, SessionBackend
from app.sessions.memory import MemoryBackend

INSTALL = "pip install 'convscope[redis]'"


class RedisUnavailable(RuntimeError):
    """CONVSCOPE_REDIS_URL is set but Redis cannot be used."""


def shown_url(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _unreachable(url: str, error: Exception) -> RedisUnavailable:
    return RedisUnavailable(
        f"CONVSCOPE_REDIS_URL is {shown_url(url)}, but Redis cannot be reached there "
        f"({error}). Start Redis (redis-server), correct the URL, or unset "
        "CONVSCOPE_REDIS_URL to keep sessions and runs in this process (one worker)."
    )


def _redis_module() -> Any:
    try:
        import redis
    except ImportError:
        raise RedisUnavailable(
            f"CONVSCOPE_REDIS_URL is set, but the redis client is not installed: {INSTALL}."
        ) from None
    return redis


async def open_sessions(settings: Any) -> SessionBackend:
    limits = Limits.from_settings(settings)
    if not settings.redis_url:
        return MemoryBackend(limits)
    redis = _redis_module()
    from app.sessions.redis_backend import RedisBackend

    try:
        return await RedisBackend.connect(settings.redis_url, limits)
    except (redis.RedisError, OSError, TimeoutError) as error:
        raise _unreachable(settings.redis_url, error) from None


def open_redis_runs(settings: Any) -> Any:
    """The Redis run store (app/runs_redis.py), connected; RedisUnavailable otherwise."""
    redis = _redis_module()
    from app.runs_redis import RedisRunStore

    try:
        return RedisRunStore.connect(
            settings.redis_url,
            max_runs=settings.run_cache_runs,
            max_bytes=settings.run_cache_bytes,
            ttl_seconds=settings.run_ttl_seconds,
        )
    except (redis.RedisError, OSError) as error:
        raise _unreachable(settings.redis_url, error) from None
