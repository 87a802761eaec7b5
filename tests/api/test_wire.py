"""The stream on the wire (app/stream.py): the "uint8-split" volumes round-trip within the
documented bound, gzip'd responses decode line by line as they arrive, and a client that
sends no Accept-Encoding gets plain NDJSON."""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import subprocess
import threading
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from app import prediction, stream
from tests.api.networks import CIFAR_LAYERS, reference
from tests.asgi import receive_once
from tests.images import jpeg, photo, png
from tests.slow_app import GatedNetwork

JS_TEST = Path(__file__).resolve().parents[1] / "js" / "split.test.mjs"
CHROMIUM = "gzip, deflate, br, zstd"


def half_step(line: dict) -> float:
    return (line["scale"]["max"] - line["scale"]["min"]) / 510 * 1.001 + 1e-6


def scope(path: str, query: bytes, headers: list[tuple[bytes, bytes]], method: str) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


async def call(
    app: FastAPI, path: str, query: bytes = b"", accept: bytes | None = None, body: bytes = b""
) -> tuple[dict, list[bytes]]:
    """The response start message and its body chunks, with exactly these headers (no
    Accept-Encoding at all when `accept` is None)."""
    headers = [] if accept is None else [(b"accept-encoding", accept)]
    method = "GET"
    if body:
        request = httpx.Request("POST", "http://t/", files={"image": ("a.png", body)})
        body = request.read()
        headers.append((b"content-type", request.headers["content-type"].encode()))
        method = "POST"
    finished = asyncio.Event()
    start: dict = {}
    chunks: list[bytes] = []

    receive = receive_once(body, finished)

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message.get("body"):
            chunks.append(message["body"])

    try:
        await app(scope(path, query, headers, method), receive, send)
    finally:
        finished.set()
    return start, chunks


def header(start: dict, name: bytes) -> bytes | None:
    return dict(start["headers"]).get(name)


# --- the encoding --------------------------------------------------------------------------


@pytest.mark.parametrize("count", [0, 1, 2, 3, 4, 5, 999, 32768])
def test_split_round_trips_every_byte_exactly(count: int) -> None:
    q = np.random.default_rng(count).integers(0, 256, count, dtype=np.uint8)
    text = stream.split(q)
    assert len(text) == count + -(-count // 3)
    assert set(text) <= set(stream.ALPHABET)
    assert np.array_equal(stream.unsplit(text, count), q)


def test_split_is_refused_when_malformed() -> None:
    with pytest.raises(ValueError, match="cannot hold"):
        stream.unsplit(b"AAAA", 4)
    with pytest.raises(ValueError, match="alphabet"):
        stream.unsplit(b"AAA=", 3)


def test_split_lines_carry_the_same_bytes_as_base64_within_the_bound() -> None:
    rng = np.random.default_rng(3)
    volume = np.maximum(rng.normal(0, 2, (7, 5, 11)), 0).astype(np.float32)  # a ReLU's
    plain = json.loads(stream.LayerLines()(0, "relu1", "relu", volume, 0.0))
    split = json.loads(stream.LayerLines("uint8-split")(0, "relu1", "relu", volume, 0.0))
    assert (plain["encoding"], split["encoding"]) == ("uint8", "uint8-split")
    assert np.array_equal(stream.volume_bytes(plain), stream.volume_bytes(split))
    assert np.abs(stream.dequantize(split) - volume).max() <= half_step(split)


@pytest.mark.parametrize(
    ("header_value", "gzip"),
    [
        ("gzip, deflate, br, zstd", True),
        ("br;q=1.0, gzip;q=0.5", True),
        ("*", True),
        ("gzip;q=0", False),
        ("identity", False),
        ("deflate, br", False),
        ("", False),
        (None, False),
    ],
)
def test_accept_encoding(header_value: str | None, gzip: bool) -> None:
    assert stream.accepts_gzip(header_value) is gzip


def test_the_page_decodes_the_servers_split_encoding(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    cases = [rng.integers(0, 256, n, dtype=np.uint8) for n in (1, 2, 3, 100, 4097)]
    cases.append(np.arange(256, dtype=np.uint8))
    fixture = [{"bytes": q.tolist(), "text": stream.split(q).decode()} for q in cases]
    run_node_test(JS_TEST, "SPLIT_FIXTURE", fixture, tmp_path)


def run_node_test(test: Path, variable: str, fixture: object, tmp_path: Path) -> None:
    """Run one of tests/js's node tests with `fixture` as the JSON file named by `variable`;
    every one of its tests must run and pass."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: apt-get install -y nodejs")
    path = tmp_path / f"{test.stem}.json"
    path.write_text(json.dumps(fixture))
    result = subprocess.run(
        [node, "--test", str(test)],
        env={**os.environ, variable: str(path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# skipped 0" in result.stdout


# --- through the app -----------------------------------------------------------------------


def lines_of(start: dict, chunks: list[bytes]) -> list[dict]:
    body = b"".join(chunks)
    if header(start, b"content-encoding") == b"gzip":
        body = zlib.decompress(body, 16 + 15)
    assert body.endswith(b"\n")
    return [json.loads(line) for line in body.splitlines()]


async def test_a_browser_gets_gzip_and_split_volumes_within_the_bound(app: FastAPI) -> None:
    upload = jpeg(photo(80, 60, seed=4))
    async with app.router.lifespan_context(app):
        start, chunks = await call(
            app, "/api/models/cifar10/forward", b"encoding=uint8-split", CHROMIUM.encode(), upload
        )
        assert start["status"] == 200
        assert header(start, b"content-encoding") == b"gzip"
        assert header(start, b"vary") == b"Accept-Encoding"
        lines = lines_of(start, chunks)
        assert [m["type"] for m in lines] == ["run"] + ["layer"] * CIFAR_LAYERS + ["scores"]
        net = reference("cifar10")
        pixels = np.frombuffer(stream.base64.b64decode(lines[0]["input"]["data"]), np.uint8)
        x = net.preprocess(pixels.reshape(lines[0]["input"]["shape"])[None])
        for line, volume in zip(lines[1:-1], net.forward(x), strict=True):
            assert line["encoding"] == "uint8-split"
            assert np.abs(stream.dequantize(line) - volume[0]).max() <= half_step(line)
        # The same run again, from the store, in the same form.
        replay_start, replay_chunks = await call(
            app, f"/api/runs/{lines[0]['id']}/stream", b"encoding=uint8-split", b"gzip"
        )
        assert header(replay_start, b"content-encoding") == b"gzip"
        again = lines_of(replay_start, replay_chunks)
        for line, first in zip(again[1:-1], lines[1:-1], strict=True):
            assert np.array_equal(stream.volume_bytes(line), stream.volume_bytes(first))


async def test_no_accept_encoding_gets_plain_ndjson_in_base64(app: FastAPI) -> None:
    async with app.router.lifespan_context(app):
        start, chunks = await call(app, "/api/models/cifar10/forward", body=png(photo(seed=2)))
        assert start["status"] == 200 and header(start, b"content-encoding") is None
        lines = [json.loads(line) for line in b"".join(chunks).splitlines()]
        assert {line["encoding"] for line in lines[1:-1]} == {"uint8"}
        replay_start, replay_chunks = await call(app, f"/api/runs/{lines[0]['id']}/stream")
        assert header(replay_start, b"content-encoding") is None
        assert b"".join(replay_chunks).count(b"\n") == len(lines)


async def test_an_unknown_encoding_is_a_422_sentence(app: FastAPI) -> None:
    async with app.router.lifespan_context(app):
        start, chunks = await call(
            app, "/api/models/cifar10/forward", b"encoding=float", None, png(photo(seed=2))
        )
        assert start["status"] == 422
        assert "uint8-split" in b"".join(chunks).decode()


async def test_each_gzip_line_decodes_before_the_next_layer_is_computed(app: FastAPI) -> None:
    """Layer i + 1 is computed only once layer i's line could be decompressed from what was
    sent: a compressor that held bytes back (no flush per line) would stall here."""
    decoded = threading.Semaphore(0)
    inflate = zlib.decompressobj(16 + 15)
    pending = [b""]
    lines: list[dict] = []

    def wait(index: int) -> None:
        if not decoded.acquire(timeout=30):
            raise TimeoutError(f"layer {index - 1}'s line never decoded")

    async with app.router.lifespan_context(app):
        served = app.state.registry.get("cifar10")
        served.network = GatedNetwork(served.network, wait, lambda: None)
        request = httpx.Request("POST", "http://t/", files={"image": ("a.png", png())})
        body = request.read()
        finished = asyncio.Event()

        receive = receive_once(body, finished)

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                assert dict(message["headers"])[b"content-encoding"] == b"gzip"
                return
            pending[0] += inflate.decompress(message.get("body", b""))
            *complete, pending[0] = pending[0].split(b"\n")
            for line in complete:
                lines.append(json.loads(line))
                decoded.release()

        headers = [
            (b"accept-encoding", b"gzip"),
            (b"content-type", request.headers["content-type"].encode()),
        ]
        try:
            await app(scope("/api/models/cifar10/forward", b"", headers, "POST"), receive, send)
        finally:
            finished.set()
    assert [line["type"] for line in lines] == ["run"] + ["layer"] * CIFAR_LAYERS + ["scores"]
    assert inflate.eof and pending[0] == b""


# --- "uint8-predicted": ReLU and pool lines as their difference from the line before ---------


def predicted_by_loops(how: str, q_prev: np.ndarray, prev_scale, scale) -> np.ndarray:
    """app/prediction.py's arithmetic written out number by number (float64, as a browser)."""
    (lo_p, hi_p), (lo, hi) = prev_scale, scale
    step, k = (hi_p - lo_p) / 255, 255 / (hi - lo)
    depth, height, width = q_prev.shape
    if how == "max2x2":
        height, width = height // 2, width // 2
    out = np.zeros((depth, height, width), np.int16)
    for d in range(depth):
        for r in range(height):
            for c in range(width):
                if how == "relu":
                    x = max(lo_p + int(q_prev[d, r, c]) * step, 0.0)
                else:
                    best = max(int(q_prev[d, 2 * r + i, 2 * c + j]) for i in (0, 1) for j in (0, 1))
                    x = lo_p + best * step
                out[d, r, c] = min(255, max(0, math.floor((x - lo) * k + 0.5)))
    return out


def conv_relu_pool(seed: int) -> list[tuple[str, np.ndarray]]:
    conv = np.random.default_rng(seed).normal(0.3, 2, (6, 8, 5)).astype(np.float32)
    relu = np.maximum(conv, 0)
    pool = relu.reshape(3, 2, 4, 2, 5).max(axis=(1, 3))
    return [("conv", conv), ("relu", relu), ("pool", pool)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_predicted_lines_carry_the_split_lines_bytes(seed: int) -> None:
    layers = conv_relu_pool(seed)
    predicted, split = stream.LayerLines("uint8-predicted"), stream.LayerLines("uint8-split")
    reader = stream.LayerReader()
    for index, (kind, volume) in enumerate(layers):
        line = json.loads(predicted(index, kind, kind, volume, 0.0))
        reference_line = json.loads(split(index, kind, kind, volume, 0.0))
        expected = {"conv": "uint8-split", "relu": "uint8-predicted", "pool": "uint8-predicted"}
        assert line["encoding"] == expected[kind]
        assert line.get("prediction") == {"conv": None, "relu": "relu", "pool": "max2x2"}[kind]
        assert np.array_equal(reader(line), stream.volume_bytes(reference_line))
        assert np.abs(stream.dequantize(line, line["q"]) - volume).max() <= half_step(line)


def test_the_prediction_is_the_arithmetic_written_out() -> None:
    rng = np.random.default_rng(7)
    q_prev = rng.integers(0, 256, (3, 6, 4), dtype=np.uint8)
    for how, scales in [
        ("relu", ((-1.5, 2.25), (0.0, 2.25))),
        ("max2x2", ((0.0, 3.0), (0.1, 3.0))),
    ]:
        expected = predicted_by_loops(how, q_prev, *scales)
        assert np.array_equal(prediction.predict(how, q_prev, *scales), expected)


def test_a_layer_far_from_its_prediction_is_sent_whole() -> None:
    lines = stream.LayerLines("uint8-predicted")
    rng = np.random.default_rng(4)
    lines(0, "conv", "conv", rng.normal(0, 1, (4, 4, 2)).astype(np.float32), 0.0)
    unrelated = rng.uniform(0, 1, (4, 4, 2)).astype(np.float32)  # a "relu" that is not one
    line = json.loads(lines(1, "relu", "relu", unrelated, 0.0))
    assert line["encoding"] == "uint8-split" and "prediction" not in line
    assert np.abs(stream.dequantize(line) - unrelated).max() <= half_step(line)


def test_a_predicted_line_without_the_line_before_is_refused() -> None:
    layers = conv_relu_pool(0)
    lines = stream.LayerLines("uint8-predicted")
    lines(0, "conv", "conv", layers[0][1], 0.0)
    relu = json.loads(lines(1, "relu", "relu", layers[1][1], 0.0))
    with pytest.raises(ValueError, match="needs the line before"):
        stream.volume_bytes(relu)


async def test_the_page_s_encoding_gives_the_same_bytes_in_a_third_less(app: FastAPI) -> None:
    upload = jpeg(photo(80, 60, seed=4))
    async with app.router.lifespan_context(app):
        runs = {}
        for encoding in (b"uint8-split", b"uint8-predicted"):
            start, chunks = await call(
                app,
                "/api/models/cifar10/forward",
                b"encoding=" + encoding,
                CHROMIUM.encode(),
                upload,
            )
            runs[encoding] = (sum(map(len, chunks)), lines_of(start, chunks))
        (split_size, split_lines), (size, lines) = runs[b"uint8-split"], runs[b"uint8-predicted"]
        reader = stream.LayerReader()
        kinds = {line["encoding"] for line in lines[1:-1]}
        assert kinds == {"uint8-split", "uint8-predicted"}
        for line, reference_line in zip(lines[1:-1], split_lines[1:-1], strict=True):
            assert np.array_equal(reader(line), stream.volume_bytes(reference_line))
        assert size < 0.8 * split_size, (size, split_size)
        replay_start, replay_chunks = await call(
            app, f"/api/runs/{lines[0]['id']}/stream", b"encoding=uint8-predicted", b"gzip"
        )
        replay_reader = stream.LayerReader()
        for line, first in zip(
            lines_of(replay_start, replay_chunks)[1:-1], lines[1:-1], strict=True
        ):
            assert line["encoding"] == first["encoding"]
            assert np.array_equal(replay_reader(line), first["q"])


def test_the_page_decodes_the_servers_predicted_encoding(tmp_path: Path) -> None:
    lines, everything = stream.LayerLines("uint8-predicted"), []
    for seed in (0, 1):
        for index, (kind, volume) in enumerate(conv_relu_pool(seed)):
            everything.append(json.loads(lines(index, kind, kind, volume, 0.0)))
    reader = stream.LayerReader()
    expected = [reader(dict(line)).reshape(-1).tolist() for line in everything]
    assert {line["encoding"] for line in everything} == {"uint8-split", "uint8-predicted"}
    fixture = {"lines": everything, "bytes": expected}
    run_node_test(JS_TEST.parent / "predict.test.mjs", "PREDICTED_FIXTURE", fixture, tmp_path)
