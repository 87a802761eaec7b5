"""Runs computed together (app/inference.py's forward_batch, app/producer.py's
produce_batch, app/compute_pool.py's batches): each image of a batch gets the very bits it
gets alone, and so the very lines; a run that fails in a batch fails alone."""

import asyncio
import gzip
import json
import signal

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from app import compute_pool, inference, producer, stream
from app.api.forward import new_record
from app.compute_pool import CHUNK, SAVED, ComputePool, ComputeProcessDied
from app.registry import Registry
from model import Network
from tests.test_compute_pool import job_for, pool_for


@pytest.mark.parametrize("model_id", ["cifar10", "mnist", "cs231n"])
@pytest.mark.parametrize("size", [2, 3, 8])
def test_a_batch_gives_each_image_the_bits_it_gets_alone(model_id: str, size: int) -> None:
    net = Registry.load((model_id,)).get(model_id).network
    rng = np.random.default_rng(size)
    pixels = rng.integers(0, 256, (size, *net.input_shape)).astype(np.uint8)
    batched = list(inference.forward_batch(net, pixels))
    assert [layer for layer, _ in batched] == net.layers
    for i in range(size):
        alone = [volume for _, volume, _ in inference.layers(net, pixels[i])]
        for (_, volumes), volume in zip(batched, alone, strict=True):
            assert volumes[i].tobytes() == volume.tobytes()


class Channel:
    """A compute process's channel that keeps what is queued."""

    def __init__(self) -> None:
        self.frames = []

    def queue(self, kind: int, slot: int, payload: bytes = b"") -> None:
        self.frames.append((kind, slot, payload))

    def flush(self) -> None:
        pass


def test_a_compute_process_finding_batches_inexact_says_so_and_computes_runs_alone(
    monkeypatch, capsys
) -> None:
    registry = Registry.load(("cifar10",))
    runner = compute_pool._Runner(Channel(), registry, None)
    assert runner._batch_exact(registry.get("cifar10"))  # exact here, as on every BLAS seen
    assert capsys.readouterr().err == ""

    honest = inference.forward_batch
    checked = []

    def off_by_one_bit(net, pixels):  # what a BLAS summing a batch otherwise would give
        checked.append(len(pixels))
        for layer, volumes in honest(net, pixels):
            volumes.view(np.uint32)[-1, 0, 0, 0] ^= 1
            yield layer, volumes

    monkeypatch.setattr(inference, "forward_batch", off_by_one_bit)
    groups = []
    monkeypatch.setattr(
        producer, "produce_batch", lambda served, jobs, flush=None: groups.append(len(jobs))
    )
    runner = compute_pool._Runner(Channel(), registry, None, batch=5)
    pixels = np.zeros((32, 32, 3), np.uint8).tobytes()
    runner.compute([job_for()], [pixels])  # a run alone needs no check
    assert (groups, checked, capsys.readouterr().err) == ([1], [], "")
    runner.compute([job_for(), job_for(), job_for()], [pixels] * 3)
    assert groups == [1, 1, 1, 1]
    assert checked == [5]  # every place a batch can have
    assert "not bit for bit their runs alone" in capsys.readouterr().err


def test_layers_not_known_to_be_exact_in_a_batch_go_image_by_image() -> None:
    spec = {
        "input": [6, 6, 2],
        "layers": [
            {"kind": "conv2d", "filters": 3, "kernel": [3, 3], "pads": 1},
            {"kind": "batchnorm", "eps": 1e-3},
            {"kind": "gap"},
            {"kind": "flatten"},
        ],
    }
    net = Network(spec)
    calls = []
    layer = net.layers[1]
    original = layer.forward
    layer.forward = lambda x: calls.append(len(x)) or original(x)
    pixels = np.random.default_rng(0).integers(0, 256, (4, 6, 6, 2)).astype(np.uint8)
    batched = list(inference.forward_batch(net, pixels))
    assert calls == [1, 1, 1, 1]
    for i in range(4):
        alone = net.forward(net.preprocess(pixels[i : i + 1]))
        assert all(np.array_equal(v[i], a[0]) for (_, v), a in zip(batched, alone, strict=True))


class Kept:
    def __init__(self) -> None:
        self.saved = []

    def save(self, record, pixels, volumes) -> None:
        self.saved.append(record.id)


def lines_of(chunks: list[bytes]) -> list[dict]:
    lines = [json.loads(line) for line in b"".join(chunks).splitlines()]
    for line in lines:
        line.pop("elapsed_ms", None)
    return lines


def test_a_batch_emits_the_lines_each_run_gets_alone_and_a_failing_run_fails_alone() -> None:
    served = Registry.load(("cifar10",)).get("cifar10")
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 256, (32, 32, 3)).astype(np.uint8) for _ in range(3)]
    alone = []
    for pixels in images:
        chunks = []
        record = new_record(served, pixels)
        producer.produce(
            served, pixels, record, Kept(), 0.0, "uint8-predicted", stream.Plain(), chunks.append
        )
        alone.append(lines_of(chunks))

    class Breaks(Kept):
        def save(self, record, pixels, volumes) -> None:
            raise OSError("the disk is full, say")

    emitted = [[] for _ in images]
    failed, flushes = [], []
    jobs = [
        producer.Job(
            pixels,
            new_record(served, pixels),
            Breaks() if i == 1 else Kept(),
            0.0,
            "uint8-predicted",
            stream.Plain(),
            emitted[i].append,
            lambda job, error: failed.append((job, error)),
        )
        for i, pixels in enumerate(images)
    ]
    producer.produce_batch(served, jobs, lambda: flushes.append([len(e) for e in emitted]))
    for i in (0, 2):
        assert lines_of(emitted[i]) == alone[i]
    # The run whose keeping failed got every layer, then no scores line: its failure.
    assert lines_of(emitted[1]) == alone[1][:-1]
    assert [(job, str(error)) for job, error in failed] == [(jobs[1], "the disk is full, say")]
    # Every layer's lines went out together, one flush per layer, before the next layer.
    layers = len(served.network.layers)
    assert flushes[:layers] == [[n, n, n] for n in range(1, layers + 1)]
    # Then each run's scores line went out as soon as that run was kept (the failed one's
    # error is its own: no scores line).
    done, left = layers + 1, layers
    assert flushes[layers:] == [[done, left, left], [done, left, left], [done, left, done]]


async def test_runs_waiting_for_a_child_go_through_one_forward_with_their_own_lines(
    tmp_path,
) -> None:
    pool, registry = pool_for(tmp_path, processes=1)
    served = registry.get("cifar10")
    rng = np.random.default_rng(7)
    images = [rng.integers(0, 256, (32, 32, 3)).astype(np.uint8) for _ in range(5)]

    async def run(pixels: np.ndarray) -> list[dict]:
        record = new_record(served, pixels)
        job = {**job_for(record.dump()), "encoding": "uint8-predicted"}
        job["run_line"] = stream.run_line(record, len(served.network.layers), pixels).decode()
        frames = [frame async for frame in pool.run(job, pixels)]
        assert SAVED in [kind for kind, _ in frames]
        return lines_of([gzip.decompress(b"".join(p for kind, p in frames if kind == CHUNK))])

    try:
        # All five wait while the child starts: it takes them as one batch.
        together = await asyncio.gather(*(run(pixels) for pixels in images))
        assert list(pool.batches) == [5]
        for pixels, lines in zip(images, together, strict=True):
            chunks = []
            record = new_record(served, pixels)
            # One BLAS thread, as the compute process and the server run: with two, the
            # BLAS may split a product's sums otherwise (OpenBLAS on an AMD EPYC does).
            with threadpool_limits(1, user_api="blas"):
                producer.produce(
                    served,
                    pixels,
                    record,
                    Kept(),
                    0.0,
                    "uint8-predicted",
                    stream.Plain(),
                    chunks.append,
                )
            assert lines[1:] == lines_of(chunks)
    finally:
        await pool.close()


async def test_a_bad_job_in_a_batch_fails_alone(tmp_path) -> None:
    pool, _ = pool_for(tmp_path, processes=1)
    try:
        good, bad, other = await asyncio.gather(
            collect(pool), collect(pool, job_for({"id": "not a record"})), collect(pool)
        )
        assert list(pool.batches) == [3]
        assert SAVED in [kind for kind, _ in good] and SAVED in [kind for kind, _ in other]
        text = gzip.decompress(b"".join(p for kind, p in bad if kind == CHUNK))
        assert json.loads(text.splitlines()[-1])["type"] == "error"
    finally:
        await pool.close()


async def collect(pool: ComputePool, job: dict | None = None) -> list[tuple[int, bytes]]:
    return [frame async for frame in pool.run(job or job_for(), np.zeros((32, 32, 3), np.uint8))]


async def test_free_children_share_the_waiting_runs(tmp_path) -> None:
    pool, _ = pool_for(tmp_path, processes=2)
    try:
        await collect(pool)  # both children started; both wait for work now
        while pool._idle < 2:
            await asyncio.sleep(0.01)
        pool.batches.clear()
        await asyncio.gather(collect(pool), collect(pool))
        assert list(pool.batches) == [1, 1]  # one each, not both for one child
    finally:
        await pool.close()


async def test_a_child_dying_with_a_batch_ends_each_of_its_runs(tmp_path) -> None:
    pool, _ = pool_for(tmp_path, processes=1)
    try:
        await collect(pool)
        [child] = pool._children
        child.process.send_signal(signal.SIGSTOP)  # it takes the batch, computes nothing
        pool.batches.clear()
        runs = [asyncio.ensure_future(collect(pool)) for _ in range(3)]
        while list(pool.batches) != [3]:
            await asyncio.sleep(0.01)
        child.process.kill()
        for run in runs:
            with pytest.raises(ComputeProcessDied):
                await run
        # The next run gets a new child.
        assert SAVED in [kind for kind, _ in await collect(pool)] and pool.started == 2
    finally:
        await pool.close()


def test_large_runs_get_smaller_batches(tmp_path) -> None:
    registry = Registry.load(("cifar10",))
    pool = ComputePool(1, ("cifar10",), tmp_path, batch=8)
    pool.adopt(registry)
    assert pool._networks["cifar10"][2] == 8  # half a MB of volumes per run
    small = ComputePool(1, ("cifar10",), tmp_path, batch=8)
    import app.compute_pool as compute_pool

    budget = compute_pool.BATCH_BYTES
    try:
        compute_pool.BATCH_BYTES = 3 * 121_000 * 4
        small.adopt(registry)
    finally:
        compute_pool.BATCH_BYTES = budget
    assert 1 <= small._networks["cifar10"][2] <= 3
