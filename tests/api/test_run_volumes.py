"""Runs are stored as their record and input; their volumes come from the computing worker's
memory or are recomputed by another worker (app/run_volumes.py). A recomputed layer must be
the computed one bit for bit, a changed model must make the run gone with a sentence, and
the memory budget and the one-recompute-at-a-time rule must hold."""

from __future__ import annotations

import io
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest

import model
from app.main import create_app
from app.registry import Registry, ServedModel
from app.run_volumes import RunVolumes
from app.runs import RunStore
from app.settings import Settings
from tests.api.test_runs import make_run


@asynccontextmanager
async def worker(settings: Settings, registry: Registry | None = None) -> AsyncIterator:
    """A server process of its own over the same runs folder: its own memory of volumes."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        if registry is not None:
            app.state.registry = app.state.run_volumes.registry = registry
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield app, client


async def npy(client: httpx.AsyncClient, run_id: str, index: int) -> np.ndarray:
    response = await client.get(f"/api/runs/{run_id}/layers/{index}.npy")
    assert response.status_code == 200, response.text
    return np.load(io.BytesIO(response.content))


@pytest.mark.parametrize("processes", [0, 1])
async def test_another_worker_recomputes_every_layer_bit_for_bit(
    settings: Settings, processes: int
) -> None:
    settings = settings.model_copy(update={"compute_processes": processes})
    async with worker(settings) as (first, client):
        run_id, lines = await make_run(client)
        computed = [await npy(client, run_id, i) for i in range(len(lines) - 2)]
        # Computed on this worker's threads: served from its memory; by a compute process
        # (app/compute_pool.py): recomputed here once, as any other worker would.
        assert first.state.run_volumes.recomputed == processes
    file = settings.runs_dir / f"{run_id}.run"
    assert file.stat().st_size < 20_000  # record and input only: no volumes on disk
    async with worker(settings) as (second, client):
        for index, expected in enumerate(computed):
            again = await npy(client, run_id, index)
            assert again.dtype == np.float32 and again.shape == expected.shape
            assert again.tobytes() == expected.tobytes(), f"layer {index}"
        assert second.state.run_volumes.recomputed == 1  # one forward for all the layers
        neuron = await client.get(f"/api/runs/{run_id}/layers/3/neurons/1/2/3")
        assert neuron.status_code == 200
        assert neuron.json()["value"] == float(computed[3][1, 2, 3])


async def test_a_run_whose_model_changed_is_gone_with_a_sentence(settings: Settings) -> None:
    async with worker(settings) as (_, client):
        run_id, _ = await make_run(client)
    changed = model.build("cifar10")  # untrained weights: not the ones the run was made with
    registry = Registry({"cifar10": ServedModel("cifar10", changed, False, digits=False)})
    async with worker(settings, registry) as (_, client):
        response = await client.get(f"/api/runs/{run_id}/layers/0.npy")
    assert response.status_code == 404
    assert "model cifar10 has changed since it was made" in response.json()["detail"]


def volumes_of(megabytes: float) -> list[np.ndarray]:
    return [np.zeros(int(megabytes * 2**20) // 4, np.float32)]


def test_memory_keeps_the_most_recently_used_runs_within_its_budget() -> None:
    volumes = RunVolumes(Registry({}), max_bytes=3 * 2**20)
    for name in "abc":
        volumes.keep(name, volumes_of(1))
    volumes.keep("d", volumes_of(1))  # over budget: the least recently used (a) goes
    assert list(volumes._runs) == ["b", "c", "d"]
    volumes.keep("big", volumes_of(4))  # larger than the whole budget: not kept at all
    assert list(volumes._runs) == ["b", "c", "d"] and volumes._bytes == 3 * 2**20


def test_requests_for_one_run_at_once_recompute_it_once(tmp_path: Path) -> None:
    registry = Registry.load(("cifar10",))
    served = registry.get("cifar10")
    store = RunStore(tmp_path, max_runs=10, max_bytes=2**30, ttl_seconds=3600)
    from app import inference
    from app.api.forward import new_record

    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    record = new_record(served, pixels)
    computed = list(inference.layers(served.network, pixels))
    for layer, volume, numbers in computed:
        inference.add_layer(record, layer, volume, numbers)
    store.save(record.id, record.dump(), pixels)
    volumes = RunVolumes(registry, max_bytes=2**30)
    start = threading.Barrier(4)
    results = []

    def fetch() -> None:
        start.wait()
        with store.open(record.id) as run:
            results.append(volumes.layer(run, 5))

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert volumes.recomputed == 1
    assert all(result.tobytes() == computed[5][1].tobytes() for result in results)


async def test_a_run_too_large_for_memory_is_stored_whole(settings: Settings) -> None:
    small = settings.model_copy(update={"run_volume_memory_bytes": 1 << 20})  # cifar10: ~1 MB
    async with worker(small) as (_, client):
        run_id, _ = await make_run(client)
    assert (settings.runs_dir / f"{run_id}.run").stat().st_size > 900_000
    async with worker(small) as (second, client):
        assert (await npy(client, run_id, 0)).shape == (32, 32, 32)
        assert second.state.run_volumes.recomputed == 0  # read from the file
