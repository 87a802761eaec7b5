"""/api/sessions: every route and error, with the sessions in this process and in Redis.

Event streams are read from a real uvicorn serving the app in a thread (httpx's ASGI
transport waits for a response to end, and an event stream does not)."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import segno
from PIL import Image

from app.main import create_app
from app.sessions import codes
from app.sessions.connect import RedisUnavailable
from app.settings import Settings
from tests.conftest import serve_in_thread
from tests.images import png

KEEPALIVE = 0.2


@pytest.fixture(params=["memory", "redis"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    extra = {"redis_url": request.getfixturevalue("redis_url")} if request.param == "redis" else {}
    return Settings(
        runs_dir=tmp_path / "runs",
        models=("mnist",),
        session_keepalive_seconds=KEEPALIVE,
        max_followers=3,
        max_sessions=3,
        **extra,
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def new_session(client: httpx.AsyncClient) -> tuple[str, str]:
    answer = await client.post("/api/sessions")
    assert answer.status_code == 201, answer.text
    return answer.json()["code"], answer.json()["presenter_token"]


def digit_png() -> bytes:
    pixels = np.zeros((56, 56, 3), np.uint8)
    pixels[8:48, 26:32] = 255  # a one
    return png(Image.fromarray(pixels))


async def forward(client: httpx.AsyncClient) -> dict:
    files = {"image": ("d.png", digit_png(), "image/png")}
    answer = await client.post("/api/models/mnist/forward", files=files)
    lines = [json.loads(line) for line in answer.text.splitlines()]
    assert lines[-1]["type"] == "scores"
    return {"id": lines[0]["id"], "lines": lines}


# --- making, changing and ending a session ----------------------------------------------------


async def test_create_answers_a_readable_code_a_secret_and_a_join_link(client) -> None:
    answer = await client.post("/api/sessions")
    assert answer.status_code == 201
    body = answer.json()
    assert set(body) == {"code", "presenter_token", "join_url"}
    code = body["code"]
    assert len(code) == 6 and all(c in codes.ALPHABET for c in code)
    assert not set(code) & set("01OIl")
    assert len(body["presenter_token"]) >= 40
    assert body["join_url"] == f"http://testserver/join/{code}"
    info = (await client.get(f"/api/sessions/{code.lower()}")).json()
    assert info == {"code": code, "join_url": body["join_url"], "followers": 0}
    assert body["presenter_token"] not in json.dumps(info)


async def test_put_state_needs_the_presenter_token(client) -> None:
    code, token = await new_session(client)
    url = f"/api/sessions/{code}/state"
    missing = await client.put(url, json={"layer": 1})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in missing.json()["detail"]
    basic = await client.put(url, json={"layer": 1}, headers={"Authorization": "Basic eDp5"})
    assert basic.status_code == 401
    wrong = await client.put(url, json={"layer": 1}, headers=bearer(token + "x"))
    assert wrong.status_code == 403
    assert "not the presenter token" in wrong.json()["detail"]
    other_code, other_token = await new_session(client)
    crossed = await client.put(url, json={"layer": 1}, headers=bearer(other_token))
    assert crossed.status_code == 403
    assert (await client.put(url, json={"layer": 1}, headers=bearer(token))).status_code == 204


@pytest.mark.parametrize("code", ["ZZZZZZ", "abc", "0OIl1x", "ABCDEFG"])
async def test_unknown_or_malformed_codes_are_404(client, code: str) -> None:
    _, token = await new_session(client)
    for answer in [
        await client.put(f"/api/sessions/{code}/state", json={}, headers=bearer(token)),
        await client.get(f"/api/sessions/{code}"),
        await client.get(f"/api/sessions/{code}/events"),
        await client.get(f"/api/sessions/{code}/wall", headers=bearer(token)),
        await client.post(f"/api/sessions/{code}/end", headers=bearer(token)),
        await client.get(f"/api/sessions/{code}/qr.svg"),
        await client.post(f"/api/sessions/{code}/submissions", json={"run": "0" * 32}),
    ]:
        assert answer.status_code == 404, answer.text
        assert "ask the presenter for the code again" in answer.json()["detail"].lower() or (
            "run" in answer.json()["detail"].lower()
        )


async def test_state_must_be_a_json_object_of_at_most_16_kb(client) -> None:
    code, token = await new_session(client)
    url, auth = f"/api/sessions/{code}/state", bearer(token)
    for body in [b"[1, 2]", b'"text"', b"3", b"{not json", b"", b"\xff\xfe"]:
        answer = await client.put(url, content=body, headers=auth)
        assert answer.status_code == 422, body
        assert "JSON object" in answer.json()["detail"]
    just = json.dumps({"pad": "x" * (16 * 1024 - 11)}).encode()
    assert len(just) == 16 * 1024
    assert (await client.put(url, content=just, headers=auth)).status_code == 204
    over = json.dumps({"pad": "x" * (16 * 1024 - 10)}).encode()
    answer = await client.put(url, content=over, headers=auth)
    assert answer.status_code == 413
    assert "16 KB" in answer.json()["detail"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        yield over[:9000]
        yield over[9000:]

    assert (await client.put(url, content=chunks(), headers=auth)).status_code == 413


async def test_sessions_are_bounded_with_retry_after(client) -> None:
    for _ in range(3):
        await new_session(client)
    answer = await client.post("/api/sessions")
    assert answer.status_code == 503
    assert int(answer.headers["retry-after"]) >= 1
    assert "CONVSCOPE_MAX_SESSIONS" in answer.json()["detail"]


async def test_ending_a_session_needs_the_token_and_forgets_it(client) -> None:
    code, token = await new_session(client)
    assert (await client.post(f"/api/sessions/{code}/end")).status_code == 401
    assert (await client.post(f"/api/sessions/{code}/end", headers=bearer("x"))).status_code == 403
    assert (
        await client.post(f"/api/sessions/{code}/end", headers=bearer(token))
    ).status_code == 204
    assert (await client.get(f"/api/sessions/{code}")).status_code == 404
    again = await client.put(f"/api/sessions/{code}/state", json={}, headers=bearer(token))
    assert again.status_code == 404


async def test_a_quiet_session_expires(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"session_idle_seconds": 2}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            code, token = await new_session(client)
            await asyncio.sleep(1)
            # The presenter's PUT keeps it alive...
            put = await client.put(f"/api/sessions/{code}/state", json={}, headers=bearer(token))
            assert put.status_code == 204
            await asyncio.sleep(1)
            assert (await client.get(f"/api/sessions/{code}")).status_code == 200
            # ...and a quiet period ends it.
            await asyncio.sleep(3)
            assert (await client.get(f"/api/sessions/{code}")).status_code == 404
            put = await client.put(f"/api/sessions/{code}/state", json={}, headers=bearer(token))
            assert put.status_code == 404


# --- the class's images ---------------------------------------------------------------------


async def test_a_submission_reaches_the_wall_with_the_models_prediction(client) -> None:
    code, token = await new_session(client)
    run = await forward(client)
    top = run["lines"][-1]["top"][0]["class"]
    meant = "7" if top != "7" else "1"
    answer = await client.post(
        f"/api/sessions/{code}/submissions",
        json={"run": run["id"], "label": meant, "name": " Ada "},
    )
    assert answer.status_code == 201, answer.text
    entry = answer.json()
    assert entry["prediction"] == top and entry["label"] == meant and entry["name"] == "Ada"
    assert entry["run"] == run["id"] and entry["model"] == "mnist"
    await client.post(f"/api/sessions/{code}/submissions", json={"run": run["id"], "label": top})
    await client.post(f"/api/sessions/{code}/submissions", json={"run": run["id"]})

    assert (await client.get(f"/api/sessions/{code}/wall")).status_code == 401
    assert (await client.get(f"/api/sessions/{code}/wall", headers=bearer("no"))).status_code == 403
    wall = (await client.get(f"/api/sessions/{code}/wall", headers=bearer(token))).json()
    assert [e["label"] for e in wall["entries"]] == [meant, top, None]
    (table,) = wall["tally"]
    classes = table["classes"]
    expected = np.zeros((10, 10), int)
    expected[classes.index(meant), classes.index(top)] += 1
    expected[classes.index(top), classes.index(top)] += 1
    assert np.array_equal(table["counts"], expected)
    assert (table["total"], table["correct"]) == (2, 1)

    # The picture is what the model saw, pixel for pixel.
    picture = await client.get(entry["image"])
    assert picture.headers["content-type"] == "image/png"
    seen = await client.get(f"/api/runs/{run['id']}/input.png", params={"scale": 1})
    assert np.array_equal(
        np.asarray(Image.open(io.BytesIO(picture.content))),
        np.asarray(Image.open(io.BytesIO(seen.content))),
    )
    missing = await client.get(f"/api/sessions/{code}/wall/ffffffffffffffff.png")
    assert missing.status_code == 404


async def test_submission_errors(client) -> None:
    code, _ = await new_session(client)
    run = await forward(client)
    url = f"/api/sessions/{code}/submissions"
    bad_label = await client.post(url, json={"run": run["id"], "label": "cat"})
    assert bad_label.status_code == 422
    assert "one of mnist's classes" in bad_label.json()["detail"]
    gone = await client.post(url, json={"run": "0" * 32})
    assert gone.status_code == 404 and "make the image again" in gone.json()["detail"]
    assert (await client.post(url, json={"label": "1"})).status_code == 422
    long_name = await client.post(url, json={"run": run["id"], "name": "x" * 41})
    assert long_name.status_code == 422


async def test_the_wall_keeps_the_newest_submissions(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"max_submissions": 2}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            code, token = await new_session(client)
            run = await forward(client)
            ids = []
            for name in "abc":
                body = {"run": run["id"], "name": name}
                ids.append(
                    (await client.post(f"/api/sessions/{code}/submissions", json=body)).json()
                )
            wall = (await client.get(f"/api/sessions/{code}/wall", headers=bearer(token))).json()
            assert [e["name"] for e in wall["entries"]] == ["b", "c"]
            assert (await client.get(ids[0]["image"])).status_code == 404
            assert (await client.get(ids[2]["image"])).status_code == 200


# --- the QR code, the join page, a run again ------------------------------------------------------


async def test_the_qr_code_encodes_the_join_link(client) -> None:
    code, _ = await new_session(client)
    join_url = f"http://testserver/join/{code}"
    svg = await client.get(f"/api/sessions/{code}/qr.svg")
    assert svg.headers["content-type"] == "image/svg+xml"
    assert svg.text.lstrip().startswith("<?xml") and "<svg" in svg.text
    picture = await client.get(f"/api/sessions/{code}/qr.png", params={"scale": 1})
    assert picture.headers["content-type"] == "image/png"
    modules = np.asarray(Image.open(io.BytesIO(picture.content)).convert("L"))[4:-4, 4:-4] < 128
    assert np.array_equal(modules, np.array(segno.make(join_url, error="m").matrix, bool))
    assert (await client.get(f"/api/sessions/{code}/qr.gif")).status_code == 422


async def test_the_join_pages(client) -> None:
    form = await client.get("/join")
    assert form.status_code == 200 and 'name="code"' in form.text
    typed = await client.get("/join", params={"code": "abc-234"})
    assert typed.status_code == 303 and typed.headers["location"].endswith("/join/ABC234")
    wrong = await client.get("/join", params={"code": "hello"})
    assert wrong.status_code == 422 and "six letters and digits" in wrong.text
    assert (await client.get("/join/abc234")).headers["location"].endswith("/join/ABC234")
    viewer = await client.get("/join/ABC234")
    assert viewer.status_code == 200 and 'id="session-bar"' in viewer.text


async def test_a_run_again_is_the_stream_the_forward_route_sent(client) -> None:
    run = await forward(client)
    again = await client.get(f"/api/runs/{run['id']}/stream")
    assert again.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in again.text.splitlines()]
    strip = lambda line: {k: v for k, v in line.items() if k != "elapsed_ms"}  # noqa: E731
    assert [strip(line) for line in lines] == [strip(line) for line in run["lines"]]
    assert (await client.get(f"/api/runs/{'0' * 32}/stream")).status_code == 404


async def test_routes_are_documented(client) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in [
        "/api/sessions",
        "/api/sessions/{code}",
        "/api/sessions/{code}/state",
        "/api/sessions/{code}/events",
        "/api/sessions/{code}/submissions",
        "/api/sessions/{code}/wall",
        "/api/sessions/{code}/wall/{entry_id}.png",
        "/api/sessions/{code}/qr.{kind}",
        "/api/runs/{run_id}/stream",
    ]:
        assert path in paths, path


async def test_an_unreachable_redis_stops_the_start_with_a_sentence(
    tmp_path: Path, free_port
) -> None:
    url = f"redis://user:secret@127.0.0.1:{free_port()}/0"
    app = create_app(Settings(runs_dir=tmp_path, models=("mnist",), redis_url=url))
    with pytest.raises(RedisUnavailable) as raised:
        async with app.router.lifespan_context(app):
            pass
    message = str(raised.value)
    assert "CONVSCOPE_REDIS_URL" in message and "cannot be reached" in message
    assert "secret" not in message


# --- following: the event stream -----------------------------------------------------------------


@pytest.fixture
def live(settings: Settings) -> Iterator[str]:
    """The app served by uvicorn on a free port in a thread; its base URL."""
    with serve_in_thread(create_app(settings)) as (host, port):
        yield f"http://{host}:{port}"


class Events:
    """Reads one event stream: events (data, or named) and comments."""

    def __init__(self, response: httpx.Response):
        self.lines = response.aiter_lines()

    async def next(self, timeout: float = 5) -> dict:
        event: dict = {}
        async with asyncio.timeout(timeout):
            async for line in self.lines:
                if not line:
                    if event:
                        return event
                    continue
                field, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if field == "":
                    event.setdefault("comments", []).append(value)
                else:
                    event[field] = value
        return event


async def test_followers_get_the_current_state_first_then_each_new_one(live: str) -> None:
    async with httpx.AsyncClient(base_url=live, timeout=10) as client:
        code, token = await new_session(client)
        put = lambda state: client.put(  # noqa: E731
            f"/api/sessions/{code}/state", json=state, headers=bearer(token)
        )
        async with client.stream("GET", f"/api/sessions/{code}/events") as early:
            assert early.headers["content-type"].startswith("text/event-stream")
            assert early.headers["cache-control"] == "no-store"
            early_events = Events(early)
            assert "no state yet" in (await early_events.next())["comments"]
            assert (await put({"model": "mnist", "layer": 2})).status_code == 204
            assert json.loads((await early_events.next())["data"]) == {"model": "mnist", "layer": 2}

            # A late joiner sees what the class sees at once.
            async with client.stream("GET", f"/api/sessions/{code}/events") as late:
                late_events = Events(late)
                first = await late_events.next()
                assert json.loads(first["data"]) == {"model": "mnist", "layer": 2}
                assert first["retry"] == "1000"
                info = (await client.get(f"/api/sessions/{code}")).json()
                assert info["followers"] == 2
                await put({"model": "mnist", "layer": 3, "slice": 7})
                for events in (early_events, late_events):
                    event = await events.next()
                    while "data" not in event:
                        event = await events.next()
                    assert json.loads(event["data"]) == {"model": "mnist", "layer": 3, "slice": 7}
                # Nothing new: keep-alive comments only.
                assert (await late_events.next(timeout=2 * KEEPALIVE + 1))["comments"] == [
                    "keep-alive"
                ]

            # A submission is never sent to the class.
            run = await forward(client)
            await client.post(f"/api/sessions/{code}/submissions", json={"run": run["id"]})
            assert "data" not in await early_events.next(timeout=2 * KEEPALIVE + 1)

            # The presenter ends the session: followers are told, and the stream closes.
            await client.post(f"/api/sessions/{code}/end", headers=bearer(token))
            event = await early_events.next()
            while event.get("event") != "end":
                event = await early_events.next()
            assert json.loads(event["data"])["detail"] == "The session has ended."


async def test_followers_are_bounded_with_retry_after(live: str) -> None:
    async with httpx.AsyncClient(base_url=live, timeout=10) as client:
        code, _ = await new_session(client)
        url = f"/api/sessions/{code}/events"
        async with (
            client.stream("GET", url) as a,
            client.stream("GET", url) as b,
            client.stream("GET", url) as c,
        ):
            for stream in (a, b, c):
                await Events(stream).next()
            full = await client.get(url)
            assert full.status_code == 503
            assert int(full.headers["retry-after"]) >= 1
            assert "CONVSCOPE_MAX_FOLLOWERS" in full.json()["detail"]
        # A follower that left frees its place.
        deadline = time.monotonic() + 5
        while (await client.get(f"/api/sessions/{code}")).json()["followers"] and (
            time.monotonic() < deadline
        ):
            await asyncio.sleep(0.05)
        assert (await client.get(f"/api/sessions/{code}")).json()["followers"] == 0
