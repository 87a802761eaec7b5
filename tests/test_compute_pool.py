"""Forward runs computed in child processes (app/compute_pool.py): the same lines as the
server's own threads compute, runs kept where every worker finds them, children replaced
when they die, and a run whose reader went away read to its end before the next."""

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest

from app import stream
from app.compute_pool import BATCH, CHUNK, DONE, FAILED, SAVED, ComputePool, ComputeProcessDied
from app.main import create_app
from app.registry import Registry
from app.settings import Settings
from tests.images import photo, png

URL = "/api/models/cifar10/forward?encoding=uint8-predicted"


@asynccontextmanager
async def served(tmp_path: Path, processes: int | None) -> AsyncIterator[tuple]:
    settings = Settings(
        runs_dir=tmp_path / "runs", models_dir=tmp_path / "models", compute_processes=processes
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield app, client


def layer_lines(body: bytes) -> list[dict]:
    lines = [json.loads(line) for line in body.splitlines()]
    for line in lines:
        line.pop("elapsed_ms", None)
        line.pop("id", None)
    return lines


async def test_a_child_streams_the_same_lines_as_the_servers_threads(tmp_path: Path) -> None:
    image = png(photo(seed=3))
    bodies = {}
    for processes in (1, 0):
        async with served(tmp_path / str(processes), processes) as (app, client):
            response = await client.post(
                URL, files={"image": ("a.png", image)}, headers={"Accept-Encoding": "gzip"}
            )
            assert response.status_code == 200
            assert response.headers["content-encoding"] == "gzip"
            bodies[processes] = response.content  # httpx has decompressed it
            assert app.state.compute_pool.started == processes
            run_id = response.headers["x-run-id"]
            # Kept before the scores line, wherever it was computed, and served again.
            layer = await client.get(f"/api/runs/{run_id}/layers/3.json")
            assert layer.status_code == 200
    assert layer_lines(bodies[1]) == layer_lines(bodies[0])
    assert [line["type"] for line in layer_lines(bodies[1])][-1] == "scores"


async def test_a_plain_stream_from_a_child_is_the_same_too(tmp_path: Path) -> None:
    async with served(tmp_path, 1) as (app, client):
        response = await client.post(
            "/api/models/cifar10/forward",
            files={"image": ("a.png", png())},
            headers={"Accept-Encoding": "identity"},
        )
        assert "content-encoding" not in response.headers
        reader = stream.LayerReader()
        lines = [json.loads(line) for line in response.content.splitlines()]
        layers = [line for line in lines if line["type"] == "layer"]
        assert len(layers) == lines[0]["layer_count"]
        for line in layers:
            assert reader(line).size == np.prod(line["shape"])
        assert app.state.compute_pool.started == 1


def pool_for(tmp_path: Path, processes: int = 1) -> tuple[ComputePool, Registry]:
    registry = Registry.load(("cifar10",))
    runs = {"dir": str(tmp_path / "runs"), "max_runs": 8, "max_bytes": 1 << 30, "ttl_seconds": 60}
    pool = ComputePool(processes, ("cifar10",), tmp_path / "models", runs=runs)
    pool.adopt(registry)
    return pool, registry


def job_for(record: dict | None = None) -> dict:
    from app.api.forward import new_record

    registry = Registry.load(("cifar10",))
    pixels = np.zeros((32, 32, 3), np.uint8)
    record = record or new_record(registry.get("cifar10"), pixels).dump()
    return {
        "model": "cifar10",
        "record": record,
        "accept_encoding": "gzip",
        "encoding": "uint8",
        "run_line": '{"type":"run"}\n',
        "elapsed_ms": 0.0,
    }


async def collect(pool: ComputePool, job: dict) -> list[tuple[int, bytes]]:
    return [frame async for frame in pool.run(job, np.zeros((32, 32, 3), np.uint8))]


async def test_a_dead_child_is_replaced(tmp_path: Path) -> None:
    pool, _ = pool_for(tmp_path)
    try:
        frames = await collect(pool, job_for())
        assert SAVED in [kind for kind, _ in frames]
        [child] = pool._children
        child.process.kill()
        child.process.wait()
        frames = await collect(pool, job_for())  # a new child computes it
        assert pool.started == 2
        text = gzip.decompress(b"".join(p for kind, p in frames if kind == CHUNK))
        assert text.splitlines()[-1].startswith(b'{"type":"scores"')
    finally:
        await pool.close()


async def test_a_child_dying_mid_run_ends_the_run_with_an_error(tmp_path: Path) -> None:
    pool, _ = pool_for(tmp_path)
    try:
        await collect(pool, job_for())
        [child] = pool._children
        child.send(BATCH, json.dumps([job_for()]).encode())  # the pixels never follow
        child.process.kill()
        with pytest.raises(ComputeProcessDied):
            await child.receive()
    finally:
        await pool.close()


async def test_a_failing_run_sends_its_traceback_and_an_error_line(tmp_path: Path) -> None:
    pool, _ = pool_for(tmp_path)
    try:
        frames = await collect(pool, job_for({"id": "not a record"}))
        kinds = [kind for kind, _ in frames]
        assert FAILED in kinds and DONE not in kinds
        failed = next(payload for kind, payload in frames if kind == FAILED).decode()
        assert "ValidationError" in failed
        text = gzip.decompress(b"".join(p for kind, p in frames if kind == CHUNK))
        assert json.loads(text.splitlines()[-1])["type"] == "error"
        # The child lives on and computes the next run.
        frames = await collect(pool, job_for())
        assert SAVED in [kind for kind, _ in frames] and pool.started == 1
    finally:
        await pool.close()


async def test_a_run_left_midway_is_read_to_its_end_before_the_next(tmp_path: Path) -> None:
    pool, _ = pool_for(tmp_path)
    try:
        run = pool.run(job_for(), np.zeros((32, 32, 3), np.uint8))
        assert (await anext(run))[0] == CHUNK
        await run.aclose()  # the client went away after the first lines
        for _ in range(3):
            frames = await collect(pool, job_for())
            text = gzip.decompress(b"".join(p for kind, p in frames if kind == CHUNK))
            lines = text.splitlines()
            assert lines[0] == b'{"type":"run"}' and lines[-1].startswith(b'{"type":"scores"')
        assert pool.started == 1
    finally:
        await pool.close()


async def test_runs_wait_for_a_free_child(tmp_path: Path) -> None:
    pool, _ = pool_for(tmp_path, processes=2)
    try:
        results = await asyncio.gather(*(collect(pool, job_for()) for _ in range(6)))
        assert all(SAVED in [kind for kind, _ in frames] for frames in results)
        assert pool.started == 2
    finally:
        await pool.close()


def test_which_models_go_to_the_children(tmp_path: Path) -> None:
    pool, registry = pool_for(tmp_path)
    served_model = registry.get("cifar10")
    assert pool.serves(served_model)
    # A network the server replaced since it loaded it (only tests do) stays on its threads.
    served_model.network = Registry.load(("cifar10",)).get("cifar10").network
    assert not pool.serves(served_model)
    # So do models whose runs are stored whole, and everything with no processes at all.
    large = ComputePool(1, ("cifar10",), tmp_path)
    large.adopt(registry, too_large=lambda served: True)
    assert not large.serves(registry.get("cifar10"))
    none = ComputePool(0, ("cifar10",), tmp_path)
    none.adopt(registry)
    assert not none.serves(registry.get("cifar10"))


@pytest.mark.parametrize("how", ["children cannot start", "children hold other weights"])
async def test_a_run_no_child_can_take_is_computed_on_the_servers_threads(
    tmp_path: Path, how: str
) -> None:
    async with served(tmp_path, 1) as (app, client):
        pool = app.state.compute_pool
        if how == "children cannot start":
            pool.config["models"] = ["no-such-model"]
        else:
            network, _, limit = pool._networks["cifar10"]
            pool._networks["cifar10"] = (network, "0" * 64, limit)
        response = await client.post(URL, files={"image": ("a.png", png())})
        assert response.status_code == 200
        lines = [json.loads(line) for line in response.content.splitlines()]
        assert [line["type"] for line in lines][-1] == "scores"
        assert len(lines) == lines[0]["layer_count"] + 2
        # Kept in this worker's memory, as a run computed on its threads is.
        run_id = response.headers["x-run-id"]
        assert (await client.get(f"/api/runs/{run_id}/layers/2.json")).status_code == 200
        assert app.state.run_volumes.recomputed == 0
        if how == "children hold other weights":  # the children live on, unused for it
            assert not pool.serves(app.state.registry.get("cifar10"))
            assert len(pool.pids()) == pool.processes


async def test_a_reader_that_stops_reading_does_not_hold_the_child(tmp_path: Path) -> None:
    pool, _ = pool_for(tmp_path, processes=1)
    try:
        stalled = pool.run(job_for(), np.zeros((32, 32, 3), np.uint8))
        assert (await anext(stalled))[0] == CHUNK  # then it reads nothing for a while
        # The one child computes other runs meanwhile...
        for _ in range(2):
            frames = await asyncio.wait_for(collect(pool, job_for()), 30)
            assert SAVED in [kind for kind, _ in frames]
        # ...and the stalled run's lines are all still there, to its end.
        rest = [frame async for frame in stalled]
        assert SAVED in [kind for kind, _ in rest]
        assert pool.started == 1
    finally:
        await pool.close()


async def test_with_runs_in_redis_the_server_keeps_what_a_child_computed(
    tmp_path: Path, redis_url: str
) -> None:
    settings = Settings(
        runs_dir=tmp_path / "runs",
        models_dir=tmp_path / "models",
        compute_processes=1,
        redis_url=redis_url,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.post(URL, files={"image": ("a.png", png(photo(seed=4)))})
            assert response.status_code == 200
            lines = [json.loads(line) for line in response.content.splitlines()]
            assert lines[-1]["type"] == "scores" and app.state.compute_pool.started == 1
            run_id = response.headers["x-run-id"]
            # The child sent the record (RECORD) and this side kept it in Redis, before the
            # scores line: the run, its stats and its layers are served from there.
            run = (await client.get(f"/api/runs/{run_id}")).json()
            streamed = [line["stats"] for line in lines if line["type"] == "layer"]
            assert [layer["stats"] for layer in run["layers"]] == streamed
            layer = await client.get(f"/api/runs/{run_id}/layers/4.json")
            assert layer.status_code == 200
