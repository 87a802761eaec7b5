"""SGD with Nesterov momentum and weight decay, and the one-cycle learning-rate schedule."""

from __future__ import annotations

import math

import numpy as np


def _copy_like(layout: np.ndarray, values: np.ndarray) -> np.ndarray:
    """values, copied into an array laid out in memory like `layout`."""
    out = np.empty_like(layout, dtype=np.result_type(values))
    out[...] = values
    return out


class SGD:
    """Updates arrays in place, exactly like torch.optim.SGD(nesterov=True, weight_decay=wd).

    params: {name: array}, the network's own arrays (state_dict() returns them, not copies).
    """

    def __init__(
        self,
        params: dict[str, np.ndarray],
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        nesterov: bool = True,
    ):
        self.params = params
        self.lr, self.momentum, self.weight_decay, self.nesterov = (
            lr,
            momentum,
            weight_decay,
            nesterov,
        )
        self.velocity = {name: np.zeros_like(p) for name, p in params.items()}

    def step(self, grads: dict[str, np.ndarray]) -> None:
        for name, p in self.params.items():
            g = grads[name]
            if g.strides != p.strides:
                # One copy into the parameter's memory layout (conv weights have their own,
                # model/layers.py Conv): the passes below then run in memory order, not
                # across a transpose each.
                g = _copy_like(p, g)
            if self.weight_decay:
                g = g + self.weight_decay * p
            v = self.velocity[name]
            v *= self.momentum
            v += g
            update = g + self.momentum * v if self.nesterov else v
            p -= (self.lr * update).astype(p.dtype, copy=False)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {f"velocity.{name}": v for name, v in self.velocity.items()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        for name, v in self.velocity.items():
            v[...] = state[f"velocity.{name}"]


def one_cycle(step: int, total_steps: int, peak_lr: float, warmup: float = 0.2) -> float:
    """The learning rate at step: cosine up from peak/25 over the warm-up, then cosine
    down to peak/1e4 (the shape of torch's OneCycleLR)."""
    start, end = peak_lr / 25, peak_lr / 1e4
    warmup_steps = max(1, int(total_steps * warmup))
    if step < warmup_steps:
        t = step / warmup_steps
        return start + (peak_lr - start) * (1 - math.cos(math.pi * t)) / 2
    t = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return end + (peak_lr - end) * (1 + math.cos(math.pi * t)) / 2
