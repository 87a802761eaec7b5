"""/api/sessions: classroom sessions. The presenter's page makes one, PUTs its view on each
change; followers' pages read the view as Server-Sent Events (the current one first, then
each new one), and may send their own images to the presenter's wall.

The presenter token travels only in the Authorization header of the presenter's own
requests; no answer to anyone else contains it, and the join link does not."""

from __future__ import annotations

import json
import os
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from app import render
from app.errors import error
from app.registry import RegistryDep
from app.runs import RunNotFound, RunStoreDep
from app.sessions import codes, qr, wall
from app.sessions.backend import (
    Follower,
    Full,
    SessionBackend,
    SessionNotFound,
    WrongToken,
    now,
)

router = APIRouter(prefix="/api/sessions", tags=["sessions"])

MAX_STATE_BYTES = 16 * 1024
EVENT_STREAM = "text/event-stream"
RECONNECT_MS = 1000

NOT_FOUND = error("No session has this code: it never existed, ended, or expired.")
BUSY = error("Too many sessions, or followers of this one; Retry-After says when to try again.")
NO_TOKEN = error("The presenter's token is missing.")
WRONG_TOKEN = error("The token is not this session's presenter token.")
PNG = {"content": {"image/png": {}}, "description": "A PNG picture."}
SVG = {"content": {"image/svg+xml": {}}, "description": "An SVG picture."}


class SessionCreated(BaseModel):
    code: str = Field(description="Six characters to read aloud; no 0/O, 1/I/L.")
    presenter_token: str = Field(
        description="The presenter's secret: send it as `Authorization: Bearer <token>`."
    )
    join_url: str = Field(description="The link (and QR code) followers open.")


class SessionInfo(BaseModel):
    code: str
    join_url: str
    followers: int = Field(description="Followers connected now.")


class SubmissionIn(BaseModel):
    run: str = Field(description="The run (from the forward stream) whose image is sent.")
    label: str | None = Field(
        None, max_length=40, description="What the student meant (one of the model's classes)."
    )
    name: str | None = Field(None, max_length=40, description="The student's name, if given.")


class WallEntry(BaseModel):
    id: str
    run: str
    model: str
    prediction: str = Field(description="The model's top class for this image.")
    probability: float
    label: str | None
    name: str | None
    created: float
    image: str = Field(description="The image as the model saw it (a PNG).")


class Tally(BaseModel):
    model: str
    classes: list[str]
    counts: list[list[int]] = Field(
        description="counts[i][j]: images labelled classes[i] that the model read as classes[j]."
    )
    total: int
    correct: int


class Wall(BaseModel):
    code: str
    followers: int
    entries: list[WallEntry] = Field(description="Oldest first.")
    tally: list[Tally]


async def get_sessions(request: Request) -> SessionBackend:
    return request.app.state.sessions


SessionsDep = Annotated[SessionBackend, Depends(get_sessions)]


def _code(code: str) -> str:
    normal = codes.normalize_code(code)
    if normal is None:
        raise _not_found(code)
    return normal


def _not_found(code: str) -> HTTPException:
    return HTTPException(
        404,
        f"No class session has the code {code!r}: it never existed, was ended, or expired "
        "after a long quiet period. Ask the presenter for the code again.",
    )


def _busy(full: Full) -> HTTPException:
    return HTTPException(503, str(full), headers={"Retry-After": str(full.retry_after)})


def _token(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            401,
            "Only the presenter can do this: send the presenter token that POST "
            "/api/sessions answered, as the header Authorization: Bearer <token>.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token.strip()


Authorization = Annotated[
    str | None, Header(description="`Bearer <presenter_token>`", include_in_schema=True)
]


async def _presenter(sessions: SessionBackend, code: str, authorization: str | None) -> str:
    """The session's code once the caller has shown its presenter token."""
    token = _token(authorization)
    code = _code(code)
    try:
        await sessions.authorize(code, token)
    except SessionNotFound:
        raise _not_found(code) from None
    except WrongToken:
        raise HTTPException(
            403,
            f"This token is not the presenter token of session {code}; only the page that "
            "started the session can change what its class sees.",
        ) from None
    return code


def _join_url(request: Request, code: str) -> str:
    return str(request.url_for("join_session", code=code))


@router.post("", status_code=201, responses={503: BUSY})
async def create_session(request: Request, sessions: SessionsDep) -> SessionCreated:
    """Start a class session. Keep `presenter_token` in the presenter's page only."""
    try:
        code, token = await sessions.create()
    except Full as full:
        raise _busy(full) from None
    return SessionCreated(code=code, presenter_token=token, join_url=_join_url(request, code))


@router.get("/{code}", responses={404: NOT_FOUND})
async def get_session(request: Request, sessions: SessionsDep, code: str) -> SessionInfo:
    """Whether a code is live, its join link, and how many follow it."""
    code = _code(code)
    try:
        followers = await sessions.follower_count(code)
    except SessionNotFound:
        raise _not_found(code) from None
    return SessionInfo(code=code, join_url=_join_url(request, code), followers=followers)


# POST .../end, not DELETE on the session's address: a second method on one path makes
# Starlette's 405 name only the first route's (the OpenAPI fuzz test checks Allow).
@router.post(
    "/{code}/end", status_code=204, responses={401: NO_TOKEN, 403: WRONG_TOKEN, 404: NOT_FOUND}
)
async def end_session(sessions: SessionsDep, code: str, authorization: Authorization = None):
    """End the session now; every follower is told and the wall is forgotten."""
    code = await _presenter(sessions, code, authorization)
    try:
        await sessions.end(code)
    except SessionNotFound:
        raise _not_found(code) from None
    return Response(status_code=204)


async def _read_state(request: Request) -> str:
    too_big = HTTPException(
        413, f"A session's state is at most {MAX_STATE_BYTES // 1024} KB of JSON."
    )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_STATE_BYTES:
        raise too_big
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_STATE_BYTES:
            raise too_big
    try:
        state = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(422, "The state must be a JSON object.") from None
    if not isinstance(state, dict):
        raise HTTPException(422, "The state must be a JSON object, not a list or a value.")
    # Compact and on one line: it goes out as one `data:` line of the event stream.
    return json.dumps(state, separators=(",", ":"))


@router.put(
    "/{code}/state",
    status_code=204,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "additionalProperties": True,
                        "example": {"model": "mnist", "sample": "digit-7", "layer": 2, "slice": 5},
                    }
                }
            },
            "description": f"The presenter's view, any JSON object up to {MAX_STATE_BYTES} bytes.",
        }
    },
    responses={
        401: NO_TOKEN,
        403: WRONG_TOKEN,
        404: NOT_FOUND,
        413: error("The state is over 16 KB."),
        422: error("The body is not a JSON object."),
    },
)
async def put_state(
    request: Request, sessions: SessionsDep, code: str, authorization: Authorization = None
) -> Response:
    """Set what the class sees; every follower receives it at once."""
    code = await _presenter(sessions, code, authorization)
    state = await _read_state(request)
    try:
        await sessions.set_state(code, state)
    except SessionNotFound:
        raise _not_found(code) from None
    return Response(status_code=204)


def _event(state: str, first: bool = False) -> bytes:
    retry = f"retry: {RECONNECT_MS}\n" if first else ""
    return f"{retry}data: {state}\n\n".encode()


async def _events(
    sessions: SessionBackend, code: str, follower: Follower, sent: str | None
) -> AsyncIterator[bytes]:
    keepalive = sessions.limits.keepalive_seconds
    try:
        if sent is not None:
            yield _event(sent, first=True)
        else:
            yield f"retry: {RECONNECT_MS}\n: no state yet\n\n".encode()
        while True:
            state = await follower.next(keepalive)
            if follower.ended:
                break
            if state is None:
                if not await sessions.still_open(code, follower):
                    break
                yield b": keep-alive\n\n"
            elif state != sent:
                yield _event(state)
                sent = state
        yield b'event: end\ndata: {"detail": "The session has ended."}\n\n'
    finally:
        # Shielded: the client has gone and the stream is being cancelled, but its place
        # must still be given back.
        with anyio.CancelScope(shield=True):
            await sessions.leave(code, follower)


@router.get(
    "/{code}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {EVENT_STREAM: {"example": 'data: {"layer":3}\n\n: keep-alive\n\n'}},
            "description": "Server-Sent Events: `data: <state>` first with the current state, "
            "then each new one; `: keep-alive` comments; `event: end` when the session ends.",
        },
        404: NOT_FOUND,
        503: BUSY,
    },
)
async def session_events(sessions: SessionsDep, code: str) -> StreamingResponse:
    """Follow the presenter: read with `new EventSource(url)`."""
    code = _code(code)
    try:
        follower, state = await sessions.join(code, uuid.uuid4().hex)
    except SessionNotFound:
        raise _not_found(code) from None
    except Full as full:
        raise _busy(full) from None
    return StreamingResponse(
        _events(sessions, code, follower, state),
        media_type=EVENT_STREAM,
        headers={
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
            "X-Worker-PID": str(os.getpid()),
        },
    )


def _entry_out(code: str, entry: dict[str, Any]) -> WallEntry:
    return WallEntry(**entry, image=f"/api/sessions/{code}/wall/{entry['id']}.png")


@router.post(
    "/{code}/submissions",
    status_code=201,
    responses={
        400: error("A body that cannot be read as JSON (e.g. not UTF-8)."),
        404: error("No such session, or the run has expired."),
        422: error("A label that is not one of the model's classes."),
    },
)
async def submit(
    sessions: SessionsDep,
    store: RunStoreDep,
    code: str,
    submission: SubmissionIn,
) -> WallEntry:
    """Send a run's image to the presenter's wall. Only the presenter sees the wall; the
    class sees an image only when the presenter shows it."""
    code = _code(code)
    try:
        with store.open(submission.run) as run:
            meta, pixels = run.meta, run.pixels()
    except RunNotFound:
        raise HTTPException(
            404, f"Run {submission.run} is not here any more; make the image again and resend."
        ) from None
    classes = meta["classes"]
    label = submission.label
    if label is not None and label not in classes:
        raise HTTPException(
            422, f"The label must be one of {meta['model']}'s classes: {', '.join(classes)}."
        )
    name = (submission.name or "").strip() or None
    entry = wall.entry(secrets.token_hex(8), meta, label, name, now())
    try:
        await sessions.add_submission(code, entry, render.pixels_png(pixels, 1))
    except SessionNotFound:
        raise _not_found(code) from None
    return _entry_out(code, entry)


@router.get("/{code}/wall", responses={401: NO_TOKEN, 403: WRONG_TOKEN, 404: NOT_FOUND})
async def get_wall(
    sessions: SessionsDep, registry: RegistryDep, code: str, authorization: Authorization = None
) -> Wall:
    """The presenter's wall: every image the class sent with its prediction, the follower
    count, and a confusion table per model for labelled images."""
    code = await _presenter(sessions, code, authorization)
    try:
        entries = await sessions.submissions(code)
        followers = await sessions.follower_count(code)
    except SessionNotFound:
        raise _not_found(code) from None
    classes = {id: served.network.classes for id, served in registry.models.items()}
    return Wall(
        code=code,
        followers=followers,
        entries=[_entry_out(code, e) for e in entries],
        tally=[Tally(**t) for t in wall.tally(entries, classes)],
    )


@router.get(
    "/{code}/wall/{entry_id}.png",
    response_class=Response,
    responses={200: PNG, 404: error("No such session or wall entry.")},
)
async def get_wall_png(sessions: SessionsDep, code: str, entry_id: str) -> Response:
    """One wall entry's image, as the model saw it. Its address is known only from the wall."""
    code = _code(code)
    try:
        png = await sessions.submission_png(code, entry_id)
    except SessionNotFound:
        raise _not_found(code) from None
    except KeyError:
        raise HTTPException(404, f"Session {code}'s wall has no entry {entry_id!r}.") from None
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.get(
    "/{code}/qr.{kind}",
    response_class=Response,
    responses={200: {"content": {**PNG["content"], **SVG["content"]}}, 404: NOT_FOUND},
)
async def get_qr(
    request: Request, sessions: SessionsDep, code: str, kind: qr.Kind, scale: qr.Scale = 8
) -> Response:
    """The join link as a QR code, SVG or PNG, for a phone's camera."""
    code = _code(code)
    try:
        await sessions.follower_count(code)
    except SessionNotFound:
        raise _not_found(code) from None
    data, media_type = qr.encode(_join_url(request, code), kind, scale)
    return Response(data, media_type=media_type, headers={"Cache-Control": "private, max-age=600"})
