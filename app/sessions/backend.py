"""The session store's interface, and the local fan-out every implementation shares.

A session is a join code, the SHA-256 of its presenter's token, the presenter's current
view (a JSON object, kept as its text), the followers connected to it and the images the
class sent. It expires after `idle_seconds` without the presenter (a state PUT, a look at
the wall) or a student's submission. Followers are bounded per session and sessions in
all, so a class cannot exhaust the server by accident; past a bound the caller gets `Full`
with the seconds after which trying again is worthwhile.

Fan-out is local: each process keeps its own followers in a `Hub`, and an implementation
only has to tell every process's hub about a new state (the in-process one calls it
directly, the Redis one through pub/sub). A follower holds only the newest state it has
not yet been sent: one slow phone skips states it missed instead of queueing them, so a
follower costs the same memory however slow it is.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any


class SessionNotFound(LookupError):
    """No such session: never made, ended, or expired."""


class WrongToken(PermissionError):
    """The presenter token does not belong to this session."""


class Full(Exception):
    """A bound is reached (sessions, or followers of one session)."""

    def __init__(self, sentence: str, retry_after: int):
        super().__init__(sentence)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Limits:
    idle_seconds: float = 7200
    max_sessions: int = 100
    max_followers: int = 500
    max_submissions: int = 200
    keepalive_seconds: float = 15

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        return cls(
            idle_seconds=settings.session_idle_seconds,
            max_sessions=settings.max_sessions,
            max_followers=settings.max_followers,
            max_submissions=settings.max_submissions,
            keepalive_seconds=settings.session_keepalive_seconds,
        )


class Follower:
    """One connected follower: the newest state not yet sent to it, and whether the
    session ended."""

    def __init__(self, follower_id: str):
        self.id = follower_id
        self.ended = False
        self._latest: str | None = None
        self._wake = asyncio.Event()

    def offer(self, state: str) -> None:
        self._latest = state
        self._wake.set()

    def end(self) -> None:
        self.ended = True
        self._wake.set()

    async def next(self, timeout: float) -> str | None:
        """The newest state since the last call; None after `timeout` seconds without one,
        or once the session ended (then `ended` is true)."""
        if self._latest is None and not self.ended:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                return None
        self._wake.clear()
        state, self._latest = self._latest, None
        return None if self.ended else state


class Hub:
    """This process's followers, by session code."""

    def __init__(self) -> None:
        self._followers: dict[str, set[Follower]] = {}

    def add(self, code: str, follower: Follower) -> None:
        self._followers.setdefault(code, set()).add(follower)

    def remove(self, code: str, follower: Follower) -> None:
        followers = self._followers.get(code)
        if followers is not None:
            followers.discard(follower)
            if not followers:
                del self._followers[code]

    def count(self, code: str) -> int:
        return len(self._followers.get(code, ()))

    def codes(self) -> list[str]:
        return list(self._followers)

    def publish(self, code: str, state: str) -> None:
        for follower in self._followers.get(code, ()):
            follower.offer(state)

    def end(self, code: str) -> None:
        for follower in self._followers.pop(code, ()):
            follower.end()


class SessionBackend(ABC):
    """Where sessions live. Every method may raise SessionNotFound for an unknown code."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.hub = Hub()

    @abstractmethod
    async def create(self) -> tuple[str, str]:
        """A new session: (code, presenter token). Full past max_sessions."""

    @abstractmethod
    async def authorize(self, code: str, token: str) -> None:
        """Check the presenter's token (WrongToken) and keep the session alive."""

    @abstractmethod
    async def set_state(self, code: str, state: str) -> None:
        """Store the presenter's view (JSON text) and send it to every follower."""

    @abstractmethod
    async def state(self, code: str) -> str | None:
        """The current view, None before the presenter sent one."""

    @abstractmethod
    async def still_open(self, code: str, follower: Follower) -> bool:
        """False once the session is gone; also tells the store this follower is alive."""

    @abstractmethod
    async def follower_count(self, code: str) -> int: ...

    @abstractmethod
    async def add_submission(self, code: str, entry: dict[str, Any], png: bytes) -> None:
        """Put a student's image on the wall (the oldest go past max_submissions)."""

    @abstractmethod
    async def submissions(self, code: str) -> list[dict[str, Any]]:
        """The wall's entries, oldest first."""

    @abstractmethod
    async def submission_png(self, code: str, entry_id: str) -> bytes:
        """One entry's picture; KeyError if it is not (or no longer) on the wall."""

    @abstractmethod
    async def end(self, code: str) -> None:
        """End the session now: followers are told, everything is forgotten."""

    @abstractmethod
    async def _join(self, code: str, follower: Follower) -> str | None:
        """Count a follower in (Full past max_followers); the current state."""

    @abstractmethod
    async def _leave(self, code: str, follower: Follower) -> None: ...

    async def close(self) -> None:
        for code in self.hub.codes():
            self.hub.end(code)

    async def join(self, code: str, follower_id: str) -> tuple[Follower, str | None]:
        """A new follower of `code` and the current state. It is registered before the
        state is read, so no state PUT in between is missed. Call `leave` when it goes."""
        follower = Follower(follower_id)
        self.hub.add(code, follower)
        try:
            return follower, await self._join(code, follower)
        except BaseException:
            self.hub.remove(code, follower)
            raise

    async def leave(self, code: str, follower: Follower) -> None:
        self.hub.remove(code, follower)
        await self._leave(code, follower)


def now() -> float:
    return time.time()
