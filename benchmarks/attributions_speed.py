"""Each attribution method's time for one cifar10 image, as a ratio to one forward pass.

    python benchmarks/attributions_speed.py [--repeats 5] [--threads 1] [--image FILE]

One BLAS thread by default, as the server computes (one thread per core, app/main.py);
then the times are this thread's CPU time (time.thread_time), which a machine shared with
other work inflates far less than wall time (with --threads > 1: wall time).
The forward is net.forward of one image keeping every layer's volume, what a run costs;
each method runs with the server's default parameters (and IG also at 256 steps, its
bound). Medians over the repeats, methods timed in alternating rounds so that all of them
see the same drift of a shared machine. Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

import model
from app import imaging
from model import attributions

SAMPLE = Path(__file__).resolve().parents[1] / "static" / "samples" / "cifar10" / "cat-0001.jpg"
CASES = [
    ("saliency", {}),
    ("smoothgrad", {"samples": 25}),
    ("integrated-gradients", {"steps": 32}),
    ("integrated-gradients", {"steps": 256}),
    ("gradcam", {}),
    ("occlusion", {"patch": 8, "stride": 4}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--image", type=Path, default=SAMPLE)
    args = parser.parse_args()

    net = model.load("cifar10")
    pixels = imaging.prepare(
        args.image.read_bytes(), net.input_shape, digits=False, max_pixels=10**8
    )
    x = net.preprocess(pixels[None])[0]
    target = int(net.predict(x[None])[0].argmax())

    def forward() -> None:
        net.forward(x[None])

    calls = [("forward", forward)] + [
        (
            f"{method} {' '.join(f'{k}={v}' for k, v in params.items())}".strip(),
            lambda m=method, p=params: attributions.explain(net, x, m, target, **p),
        )
        for method, params in CASES
    ]
    clock = time.thread_time if args.threads == 1 else time.perf_counter
    times: dict[str, list[float]] = {name: [] for name, _ in calls}
    with threadpool_limits(args.threads, user_api="blas"):
        for _, call in calls:
            call()  # warm-up
        for _ in range(args.repeats):
            for name, call in calls:
                forwards = 20 if name == "forward" else 1
                start = clock()
                for _ in range(forwards):
                    call()
                times[name].append((clock() - start) / forwards)
    medians = {name: float(np.median(values)) for name, values in times.items()}
    one = medians["forward"]
    print(
        f"cifar10, {args.image.name}, {args.threads} BLAS thread(s), {args.repeats} repeats, "
        f"{clock.__name__}"
    )
    print("| method | time | ratio to one forward |")
    print("| --- | --- | --- |")
    for name, seconds in medians.items():
        print(f"| {name} | {seconds * 1000:.1f} ms | {seconds / one:.1f} |")


if __name__ == "__main__":
    main()
