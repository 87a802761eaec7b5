"""Sessions in this process: the default, for `convscope serve` with one worker.

Everything is in one dict; expired sessions are swept whenever a session is made or
looked up, so nothing outlives `idle_seconds` by more than the next request.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
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


@dataclass
class _Session:
    token_hash: str
    touched: float
    state: str | None = None
    wall: OrderedDict[str, tuple[dict[str, Any], bytes]] = field(default_factory=OrderedDict)


class MemoryBackend(SessionBackend):
    def __init__(self, limits: Limits):
        super().__init__(limits)
        self._sessions: dict[str, _Session] = {}

    def _sweep(self) -> None:
        deadline = now() - self.limits.idle_seconds
        for code in [c for c, s in self._sessions.items() if s.touched < deadline]:
            del self._sessions[code]
            self.hub.end(code)

    def _get(self, code: str) -> _Session:
        self._sweep()
        try:
            return self._sessions[code]
        except KeyError:
            raise SessionNotFound(code) from None

    async def create(self) -> tuple[str, str]:
        self._sweep()
        if len(self._sessions) >= self.limits.max_sessions:
            oldest = min(s.touched for s in self._sessions.values())
            wait = int(oldest + self.limits.idle_seconds - now()) + 1
            raise Full(
                f"This server already holds {self.limits.max_sessions} class sessions "
                "(CONVSCOPE_MAX_SESSIONS); end one, or wait for a quiet one to expire.",
                retry_after=max(1, wait),
            )
        code = codes.new_code()
        while code in self._sessions:
            code = codes.new_code()
        token = codes.new_token()
        self._sessions[code] = _Session(codes.token_hash(token), now())
        return code, token

    async def authorize(self, code: str, token: str) -> None:
        session = self._get(code)
        if not codes.token_matches(token, session.token_hash):
            raise WrongToken(code)
        session.touched = now()

    async def set_state(self, code: str, state: str) -> None:
        self._get(code).state = state
        self.hub.publish(code, state)

    async def state(self, code: str) -> str | None:
        return self._get(code).state

    async def still_open(self, code: str, follower: Follower) -> bool:
        self._sweep()
        return code in self._sessions

    async def follower_count(self, code: str) -> int:
        self._get(code)
        return self.hub.count(code)

    async def _join(self, code: str, follower: Follower) -> str | None:
        session = self._get(code)
        if self.hub.count(code) > self.limits.max_followers:  # it counts itself already
            raise Full(
                f"This session already has {self.limits.max_followers} followers "
                "(CONVSCOPE_MAX_FOLLOWERS).",
                retry_after=self.limits.keepalive_seconds.__ceil__(),
            )
        return session.state

    async def _leave(self, code: str, follower: Follower) -> None:
        pass

    async def add_submission(self, code: str, entry: dict[str, Any], png: bytes) -> None:
        session = self._get(code)
        session.touched = now()
        session.wall[entry["id"]] = (entry, png)
        while len(session.wall) > self.limits.max_submissions:
            session.wall.popitem(last=False)

    async def submissions(self, code: str) -> list[dict[str, Any]]:
        return [entry for entry, _ in self._get(code).wall.values()]

    async def submission_png(self, code: str, entry_id: str) -> bytes:
        return self._get(code).wall[entry_id][1]

    async def end(self, code: str) -> None:
        self._get(code)
        del self._sessions[code]
        self.hub.end(code)
