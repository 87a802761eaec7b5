"""NumPy engine vs PyTorch on the CPU, side by side in one process.

Prints, for the cifar10 architecture (docs/architecture.md) with the same weights and threads:
- forward of one image keeping every layer's volume (PyTorch: forward hooks),
- training throughput (images/s, forward + backward + SGD step) at batch 128,
- peak memory of a NumPy training step.

    python benchmarks/engine_speed.py [--repeats 20] [--threads 2] [--unmap-buffers]
                                      [--no-child]

First it says which BLAS kernels the two engines run (threadpoolctl: NumPy's OpenBLAS and
its kernel, "architecture"; PyTorch's MKL and its CPU capability), whether the CPU has
AVX-512 and whether OPENBLAS_CORETYPE is set: that variable forces OpenBLAS onto an older
kernel (Haswell: AVX2) on a machine with AVX-512. When it is set, the whole measurement is
repeated in a child process of its own with the variable unset (the kernel is chosen when
OpenBLAS loads, so only a new process can change it); --no-child skips that.

Like `convscope train`, it lets malloc keep freed buffers (model/training/malloc.py), for both
engines alike; --unmap-buffers leaves glibc's defaults, to measure what that is worth.

Needs `pip install torch==2.13.0` (the yardstick only; ConvScope never imports it).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

import model
from model.interop import to_torch, torch_source
from model.optim import SGD
from model.training.malloc import keep_freed_buffers
from model.training.workers import GradientWorkers


def torch_sequential(net: model.Network):
    """An nn.Sequential of the same layers, loaded with the same weights."""
    import torch
    from torch import nn

    seq = eval(torch_source(net), {"nn": nn})
    seq.load_state_dict({k: torch.from_numpy(v) for k, v in to_torch(net).items()})
    return seq


CORETYPE = "OPENBLAS_CORETYPE"


def cpu_has_avx512() -> bool:
    try:
        return " avx512f" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def kernels() -> list[str]:
    """Which BLAS (and kernel) each engine loaded, as threadpoolctl and PyTorch say."""
    import torch

    lines = [
        f"CPU: AVX-512 {'yes' if cpu_has_avx512() else 'no'}; {CORETYPE} {os.environ[CORETYPE]!r}"
        if CORETYPE in os.environ
        else f"CPU: AVX-512 {'yes' if cpu_has_avx512() else 'no'}; {CORETYPE} not set"
    ]
    for pool in threadpool_info():
        if pool["user_api"] == "blas":
            owner = "torch" if "torch" in pool["filepath"] else "numpy"
            lines.append(
                f"{owner} BLAS: {pool['internal_api']} {pool.get('version')}, kernel "
                f"{pool.get('architecture', '?')}, {pool['num_threads']} threads "
                f"({Path(pool['filepath']).name})"
            )
    config = torch.__config__.show()
    blas = next((part.split("=")[1] for part in config.split(", ") if "BLAS_INFO=" in part), "?")
    lines.append(
        f"torch BLAS: {blas} (built in), CPU capability {torch.backends.cpu.get_cpu_capability()}"
        f", oneDNN {'on' if torch.backends.mkldnn.is_available() else 'off'}"
    )
    return lines


def side_by_side(numpy_fn, torch_fn, repeats: int, rounds: int = 3) -> tuple[float, float]:
    """Median seconds of each function, timed in alternating blocks of `repeats` calls so
    that both see the same drift of a shared machine. Each block starts with an untimed
    call: PyTorch's OpenMP threads keep spinning for a while after its last call, and
    would otherwise be timed against NumPy (call by call alternation halved NumPy here)."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for fn, kept in zip((numpy_fn, torch_fn), times, strict=True):
            fn()
            for _ in range(repeats):
                start = time.perf_counter()
                fn()
                kept.append(time.perf_counter() - start)
    return float(np.median(times[0])), float(np.median(times[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument(
        "--unmap-buffers", action="store_true", help="glibc's default malloc (as before)"
    )
    parser.add_argument(
        "--no-child", action="store_true", help=f"no second run with {CORETYPE} unset"
    )
    args = parser.parse_args()
    if not args.unmap_buffers:
        keep_freed_buffers()

    import torch

    for line in kernels():
        print(line)

    torch.set_num_threads(args.threads)
    net = model.build("cifar10", seed=0)
    seq = torch_sequential(net)
    rng = np.random.default_rng(0)

    # Forward of one image, keeping every layer's volume.
    x = rng.standard_normal((1, 32, 32, 3)).astype(np.float32)
    volumes = net.forward(x)
    kept: list = []
    hooks = [
        module.register_forward_hook(lambda m, i, o: kept.append(o))
        for module in seq
        if not isinstance(module, torch.nn.Flatten)
    ]
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())

    def torch_forward():
        kept.clear()
        with torch.no_grad():
            seq(xt)

    torch_forward()
    err = max(
        float(
            np.abs(v - (k.permute(0, 2, 3, 1) if k.ndim == 4 else k[:, None, None]).numpy()).max()
        )
        for v, k in zip(volumes, kept, strict=True)
    )
    # The server computes one image per request on one core (requests use the others);
    # both engines are also timed with every thread on the one image.
    for threads in sorted({1, args.threads}):
        torch.set_num_threads(threads)
        with threadpool_limits(threads, user_api="blas"):
            t_np, t_torch = side_by_side(lambda: net.forward(x), torch_forward, args.repeats * 5)
        print(
            f"forward 1 image, all volumes, {threads} thread(s): numpy {t_np * 1e3:.2f} ms,"
            f" torch {t_torch * 1e3:.2f} ms, ratio numpy/torch {t_np / t_torch:.2f}"
            f" (max abs diff {err:.1e})"
        )
    torch.set_num_threads(args.threads)
    # The training step shares these modules: without this, every step's activations were
    # kept by the hooks, and PyTorch ran 15-25% slower than on its own.
    for hook in hooks:
        hook.remove()
    kept.clear()

    # Training step: forward + backward + SGD (Nesterov, weight decay), batch 128.
    xb = rng.standard_normal((args.batch, 32, 32, 3)).astype(np.float32)
    yb = rng.integers(0, 10, args.batch)
    optimizer = SGD(net.state_dict(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    workers = GradientWorkers(args.threads)  # the trainer's step: one shard per process

    def numpy_step():
        _, grads, _ = workers.loss_and_scores(net, xb, yb)
        optimizer.step(grads)

    tseq = torch.nn.Sequential(*list(seq)[:-1])  # scores; the loss applies log-softmax
    topt = torch.optim.SGD(
        tseq.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    xbt = torch.from_numpy(xb.transpose(0, 3, 1, 2).copy())
    ybt = torch.from_numpy(yb)

    def torch_step():
        topt.zero_grad()
        torch.nn.functional.cross_entropy(tseq(xbt), ybt).backward()
        topt.step()

    reps = max(3, args.repeats // 6)
    t_np, t_torch = side_by_side(numpy_step, torch_step, reps)
    ips_np, ips_torch = args.batch / t_np, args.batch / t_torch
    print(
        f"training batch {args.batch}: numpy {ips_np:.0f} images/s, torch {ips_torch:.0f} images/s,"
        f" ratio numpy/torch {ips_np / ips_torch:.2f}"
    )
    workers.close()
    # NumPy reports its buffers to tracemalloc: the peak is the step's own array memory.
    # Measured on the whole batch in this process; the workers hold one shard each.
    tracemalloc.start()
    net.loss_and_scores(xb, yb)
    step_peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"peak memory of one NumPy training step: {step_peak_mb:.0f} MB of arrays"
        f" (process peak RSS with both engines loaded: {rss_mb:.0f} MB)"
    )
    if CORETYPE in os.environ and not args.no_child:
        print(f"\n--- again in a child process with {CORETYPE} unset ---", flush=True)
        env = {k: v for k, v in os.environ.items() if k != CORETYPE}
        subprocess.run([sys.executable, __file__, *sys.argv[1:], "--no-child"], env=env, check=True)


if __name__ == "__main__":
    main()
