"""Whether this machine's BLAS gives an image of a batch the very bits it gets alone, and what
a conv's two ways of multiplying a batch cost: one product over the whole batch's im2col
rows, or one product per image (Conv.forward, what the server's batches rely on).

    python benchmarks/conv_batch.py [--repeats 50]

For the cifar10 network, one BLAS thread as the server runs: for each way, whether every
conv output of each image of a batch of 8 equals that image's output alone (bit for bit),
and the CPU ms per image of the whole forward at batches of 1, 8 and 256, the two ways
alternating.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from app.registry import Registry
from model.layers import Conv


def one_product_over_the_batch(self: Conv, x: np.ndarray) -> np.ndarray:
    """The conv forward as it was before 2026-12-04 (training's): the batch's rows in one
    product."""
    return self._forward_im2col(x)[0]


WAYS = {
    "one product per image": Conv.forward,
    "one product over the batch": one_product_over_the_batch,
}


def convs_exact(net, pixels: np.ndarray) -> bool:
    """Each image's conv outputs in the batch equal to its own alone, for every conv."""
    x = net.preprocess(pixels)
    for layer in net.layers:
        if isinstance(layer, Conv):
            batched = layer.forward(x)
            if not all(
                np.array_equal(batched[i], layer.forward(x[i : i + 1])[0]) for i in range(len(x))
            ):
                return False
        x = layer.forward(x)
    return True


def cpu_ms_per_image(net, x: np.ndarray, repeats: int) -> float:
    net.forward(x)
    start = time.thread_time()
    for _ in range(repeats):
        net.forward(x)
    return (time.thread_time() - start) * 1000 / repeats / len(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50, help="forwards of batch 1 per timing")
    args = parser.parse_args()
    net = Registry.load(("cifar10",)).get("cifar10").network
    rng = np.random.default_rng(0)
    blas = [(i["internal_api"], i["version"], i.get("architecture")) for i in threadpool_info()]
    print(f"BLAS: {blas}")
    with threadpool_limits(1, user_api="blas"):
        pixels = rng.integers(0, 256, (8, *net.input_shape)).astype(np.uint8)
        for name, forward in WAYS.items():
            Conv.forward = forward
            print(f"{name}: batch of 8 {'exact' if convs_exact(net, pixels) else 'NOT exact'}")
        for size in (1, 8, 256):
            x = net.preprocess(rng.integers(0, 256, (size, *net.input_shape)).astype(np.uint8))
            repeats = max(1, args.repeats // size)
            times: dict[str, list[float]] = {name: [] for name in WAYS}
            for _ in range(2):
                for name, forward in WAYS.items():
                    Conv.forward = forward
                    times[name].append(cpu_ms_per_image(net, x, repeats))
            cells = ", ".join(f"{name} {min(t):.2f}-{max(t):.2f}" for name, t in times.items())
            print(f"batch {size}: CPU ms per image: {cells}")
    Conv.forward = WAYS["one product per image"]


if __name__ == "__main__":
    main()
