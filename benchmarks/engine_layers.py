"""Where a NumPy training step's time goes: each layer's forward and backward, in ms.

    python benchmarks/engine_layers.py [--batch 64] [--repeats 8] [--winograd-min-channels N]

One thread (the trainer gives each core half a batch), the cifar10 architecture, medians
after two warm-up steps. The layers as the training step runs them: a conv and the ReLU
after it (and a max pool after that) as one step (model.layers.ConvReLU), shown as
`conv2+relu2+pool1`.
--winograd-min-channels changes model.layers.WINOGRAD_MIN_CHANNELS for the run, to compare
Winograd with im2col layer by layer (a huge number: im2col only).
Times are absolute: compare runs made back to back, not across days.
"""

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

import model
from model import layers, network
from model.training.malloc import keep_freed_buffers


def _label(step) -> tuple[str, str]:
    """A training step's name and kind: a layer's own, or its layers' joined by + for a
    ConvReLU."""
    if not isinstance(step, layers.ConvReLU):
        return step.name, step.kind
    parts = [step.conv, step.relu] + ([step.pool] if step.pool else [])
    return "+".join(part.name for part in parts), "+".join(part.kind for part in parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--winograd-min-channels", type=int)
    args = parser.parse_args()
    if args.winograd_min_channels is not None:
        layers.WINOGRAD_MIN_CHANNELS = args.winograd_min_channels
    keep_freed_buffers()  # as the trainer does

    net = model.build("cifar10", seed=0)
    steps = network._training_steps(net.layers)
    x = np.random.default_rng(0).standard_normal((args.batch, 32, 32, 3)).astype(np.float32)
    forward: list[list[float]] = [[] for _ in steps]
    backward: list[list[float]] = [[] for _ in steps]
    with threadpool_limits(1, user_api="blas"):
        for _ in range(args.repeats + 2):  # two warm-up steps
            caches, volume = [], x
            for index, step in enumerate(steps):
                start = time.perf_counter()
                volume, cache = step.forward_train(volume)
                forward[index].append(time.perf_counter() - start)
                caches.append(cache)
            gradient = np.full_like(volume, 1 / volume.size)
            for index in range(len(steps) - 1, -1, -1):
                step, start = steps[index], time.perf_counter()
                if index == 0:  # nobody needs the image's gradient, as in training
                    step.backward(gradient, caches[index], need_dx=False)
                else:
                    gradient, _ = step.backward(gradient, caches[index])
                backward[index].append(time.perf_counter() - start)

    total_forward = total_backward = 0.0
    print(f"{'step':18} {'kind':14} {'forward':>9} {'backward':>9}")
    for index, step in enumerate(steps):
        name, kind = _label(step)
        f = float(np.median(forward[index][2:])) * 1e3
        b = float(np.median(backward[index][2:])) * 1e3
        total_forward, total_backward = total_forward + f, total_backward + b
        print(f"{name:18} {kind:14} {f:7.1f} ms {b:7.1f} ms")
    total = total_forward + total_backward
    print(
        f"{'total':33} {total_forward:7.1f} ms {total_backward:7.1f} ms"
        f" = {total:.1f} ms for {args.batch} images ({args.batch / total * 1e3:.0f} images/s)"
    )


if __name__ == "__main__":
    main()
