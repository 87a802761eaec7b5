"""CPU time of each piece of the server's path for one cifar10 run, in one process, as a
ratio to one bare forward of the same image timed beside it: a profile that a shared,
busy machine distorts less than sampling a server does (benchmarks/profile_server.py).

    python benchmarks/server_path.py [--repeats 200]

Pieces, as app/api/forward.py runs them: decoding and resizing (app/imaging.py, which the
server runs in a decoding worker: the hop to it is timed apart), the layers with their
statistics (app/inference.py), and the same for a compute process's batch of runs
(app/producer.py's produce_batch), the record, the lines (plain base64, and the page's
uint8-split and the page's uint8-predicted, gzip'd line by line), saving the run
(app/runs.py: its record and input; the volumes stay in memory, app/run_volumes.py). HTTP,
multipart parsing and the event loop are not here: server_speed.py's whole CPU per run minus
this sum. The last row is not part of a run: what a worker that did not compute a run
spends recomputing its volumes, once, when one of its layers is asked for.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid

import numpy as np
from server_speed import photo
from threadpoolctl import threadpool_limits

from app import imaging, inference, stream
from app.api.forward import new_record
from app.decode_pool import DecodePool
from app.registry import Registry
from app.run_volumes import RunVolumes
from app.runs import RunStore


def cpu_ms(function, repeats: int) -> float:
    for _ in range(3):
        function()
    start = time.thread_time()
    for _ in range(repeats):
        function()
    return (time.thread_time() - start) * 1000 / repeats


BATCH = 8


def batch_layers(net, batch) -> None:
    """A batch's layers with each run's statistics, as app/producer.py's produce_batch."""
    for layer, volumes in inference.forward_batch(net, batch):
        for volume in volumes:
            inference.checked_stats(layer, volume)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    threadpool_limits(1, user_api="blas")
    registry = Registry.load(("cifar10",))
    served = registry.get("cifar10")
    net = served.network
    image = photo()
    limits = {"digits": False, "max_pixels": imaging.MAX_PIXELS, "max_aspect": 20.0}
    pixels = imaging.prepare(image, net.input_shape, **limits)
    x = net.preprocess(pixels[None])
    batch = np.repeat(pixels[None], BATCH, axis=0)
    computed = list(inference.layers(net, pixels))
    volumes = [volume for _, volume, _ in computed]
    pool = DecodePool(1, 10, 512 << 20)
    loop = asyncio.new_event_loop()  # the pool's hop is asyncio, as on the server's loop
    with tempfile.TemporaryDirectory(prefix="convscope-path-") as folder:
        store = RunStore(folder, max_runs=64, max_bytes=256 << 20, ttl_seconds=3600)

        def record():
            run = new_record(served, pixels)
            for layer, volume, numbers in computed:
                inference.add_layer(run, layer, volume, numbers)
            inference.add_scores(run, *inference.scores(net, volumes[-1]))
            return run

        run = record()

        def lines(encoding: str, wire) -> int:
            size = len(wire(stream.run_line(run, len(net.layers), pixels)))
            layer_lines = stream.LayerLines(encoding)
            for i, (layer, volume, numbers) in enumerate(computed):
                size += len(wire(layer_lines(i, layer.name, layer.kind, volume, 1.0, numbers)))
            return size + len(wire(stream.scores_line(run, 1.0)) + wire.end())

        pieces = [
            ("bare forward (the yardstick)", lambda: net.forward(x)),
            (
                "decode and resize (in the decoding worker)",
                lambda: imaging.prepare(image, net.input_shape, **limits),
            ),
            (
                "the hop to the decoding worker (this side)",
                lambda: loop.run_until_complete(pool.prepare(image, net.input_shape, **limits)),
            ),
            ("layers with their statistics", lambda: list(inference.layers(net, pixels))),
            (
                f"the same in a compute process's batch of {BATCH} (per run)",
                lambda: batch_layers(net, batch),
                BATCH,
            ),
            ("the record", record),
            ("lines: plain base64", lambda: lines("uint8", stream.Plain())),
            ("lines: uint8-split, gzip'd per line", lambda: lines("uint8-split", stream.Gzip())),
            (
                "lines: uint8-predicted, gzip'd per line (the page's)",
                lambda: lines("uint8-predicted", stream.Gzip()),
            ),
            ("saving the run", lambda: store.save(uuid.uuid4().hex, run.dump_json(), pixels)),
        ]

        def recompute() -> None:
            with store.open(run.id) as stored:
                RunVolumes(registry, 1 << 30).layer(stored, 0)

        # A piece is (name, function[, runs it computes per call]).
        results = [
            (name, cpu_ms(function, args.repeats) / (rest[0] if rest else 1))
            for name, function, *rest in pieces
        ]
        results.append(("bare forward, again", cpu_ms(lambda: net.forward(x), args.repeats)))
        store.save(run.id, run.dump_json(), pixels)  # after the saves above, which evict
        extra = (
            "recomputing a stored run's volumes (not per run)",
            cpu_ms(recompute, args.repeats),
        )
    pool.close()
    loop.close()
    forward = (results[0][1] + results[-1][1]) / 2
    print("| piece | CPU ms per run | x forward |")
    print("| --- | --- | --- |")
    for name, ms in [*results, extra]:
        print(f"| {name} | {ms:.2f} | {ms / forward:.2f} |")


if __name__ == "__main__":
    main()
