"""Training: the reference recipe, one checkpoint per epoch, resumable, reproducible.

    convscope train --model cifar10 --data ../shared/datasets/cifar10-jpg.tar.gz

Every epoch's shuffling and augmentation draw from a generator seeded by (seed, epoch),
so a run resumed from a checkpoint continues exactly as the uninterrupted run would.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from model.network import Network
from model.optim import SGD, one_cycle
from model.training import augment
from model.training.datasets import Dataset, load_split
from model.training.evaluate import evaluate
from model.training.workers import GradientWorkers
from model.weights import SHIPPED_DIR, build, save

# The recipe per shipped model. cifar10: the reference recipe (docs/architecture.md) run
# twice as long, with label smoothing; mnist: digits moved, turned, scaled and re-inked the
# way mouse-drawn and photographed digits differ from MNIST's.
RECIPES: dict[str, dict[str, Any]] = {
    "cifar10": {"epochs": 60, "lr": 0.05, "augmentation": "flip-crop", "label_smoothing": 0.1},
    "mnist": {"epochs": 20, "lr": 0.05, "augmentation": "digits"},
    "cs231n": {"epochs": 20, "lr": 0.01, "augmentation": "flip-crop"},  # 0.05 diverges
}


@dataclass
class TrainConfig:
    model: str
    data: str
    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup: float = 0.2
    augmentation: str = "flip-crop"  # "flip-crop", "digits", "shift" or "none"
    label_smoothing: float = 0.0
    seed: int = 0
    out: str = ""  # weights path without suffix; default model/shipped/<model>
    checkpoint: str = ""  # default checkpoints/<model>.ckpt.npz
    workers: int = 0  # training-step processes; 0 = one per core
    limit: int = 0  # use only the first N training images (quick experiments, tests)

    @classmethod
    def for_model(cls, model: str, data: str, **overrides: Any) -> TrainConfig:
        """The recipe for a shipped model, with any option overridden (None = keep)."""
        recipe = RECIPES.get(model, {})
        chosen = {k: v for k, v in overrides.items() if v is not None}
        return cls(model=model, data=data, **{**recipe, **chosen})

    @property
    def out_path(self) -> Path:
        return Path(self.out) if self.out else SHIPPED_DIR / self.model

    @property
    def checkpoint_path(self) -> Path:
        return (
            Path(self.checkpoint)
            if self.checkpoint
            else Path("checkpoints") / f"{self.model}.ckpt.npz"
        )


@dataclass
class EpochLog:
    epoch: int
    loss: float
    train_accuracy: float
    test_accuracy: float
    images_per_second: float
    seconds: float


@dataclass
class TrainResult:
    net: Network
    history: list[EpochLog] = field(default_factory=list)
    weights_path: Path | None = None


def augment_batch(images: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Random flip + padded crop (photos) or small shifts (digits), on float pixels."""
    if kind == "flip-crop":
        return augment.random_crop(augment.random_flip(images, rng), rng, pad=4)
    if kind == "digits":
        return augment.random_affine(augment.random_stroke_width(images, rng), rng)
    if kind == "shift":
        return augment.random_shift(images, rng, max_shift=2)
    if kind == "none":
        return images
    raise ValueError(f"unknown augmentation {kind!r}: use flip-crop, digits, shift or none")


def train(
    config: TrainConfig,
    train_set: Dataset | None = None,
    test_set: Dataset | None = None,
    resume: bool = False,
    net: Network | None = None,
    progress: bool = True,
    on_epoch: Callable[[EpochLog], None] | None = None,
) -> TrainResult:
    """Train config.model on config.data; write a checkpoint every epoch and, at the end,
    the weights and their model card. Datasets (and a network) can be passed in directly.
    on_epoch(log) is called after each epoch's checkpoint is written; whatever it raises
    (KeyboardInterrupt, as from Ctrl-C) ends the run there, the checkpoint kept."""
    net = net or build(config.model, seed=config.seed)
    channels = net.input_shape[2]
    if train_set is None:
        train_set = load_split(config.data, "train", net.classes or None, channels=channels)
    if test_set is None:
        test_set = load_split(config.data, "test", net.classes or None, channels=channels)
    images, labels = train_set.images, train_set.labels
    if config.limit:
        images, labels = images[: config.limit], labels[: config.limit]

    optimizer = SGD(net.state_dict(), config.lr, config.momentum, config.weight_decay)
    history: list[EpochLog] = []
    start_epoch = 0
    if resume and config.checkpoint_path.exists():
        start_epoch, history = _load_checkpoint(config, net, optimizer)
        _say(f"resumed from {config.checkpoint_path} after epoch {start_epoch}", progress)

    started = time.perf_counter()
    with GradientWorkers(config.workers or None) as workers:
        for epoch in range(start_epoch, config.epochs):
            log = _train_epoch(
                net, workers, optimizer, images, labels, test_set, config, epoch, progress
            )
            history.append(log)
            _say(
                f"epoch {log.epoch}/{config.epochs}: loss {log.loss:.4f},"
                f" train acc {log.train_accuracy:.4f}, test acc {log.test_accuracy:.4f},"
                f" {log.images_per_second:.0f} images/s, {log.seconds:.0f} s",
                progress,
            )
            _save_checkpoint(config, net, optimizer, epoch + 1, history)
            if on_epoch is not None:
                on_epoch(log)

    final = evaluate(net, test_set.images, test_set.labels)
    card = _model_card(
        config, net, train_set, test_set, history, final.accuracy, time.perf_counter() - started
    )
    net.card = card
    weights_path = save(net, config.out_path, card)
    _say(
        f"test accuracy {final.accuracy:.4f} on {final.count} images; weights in {weights_path}",
        progress,
    )
    return TrainResult(net, history, weights_path)


def _train_epoch(
    net: Network,
    workers: GradientWorkers,
    optimizer: SGD,
    images: np.ndarray,
    labels: np.ndarray,
    test_set: Dataset,
    config: TrainConfig,
    epoch: int,
    progress: bool,
) -> EpochLog:
    """One pass over the training images, shuffled and augmented by (seed, epoch), with a
    progress bar, then the accuracy on the test set."""
    rng = np.random.default_rng([config.seed, epoch])
    order = rng.permutation(len(images))
    steps_per_epoch = int(np.ceil(len(images) / config.batch_size))
    total_steps = steps_per_epoch * config.epochs
    bar = tqdm(
        range(steps_per_epoch),
        desc=f"epoch {epoch + 1}/{config.epochs}",
        disable=not progress,
        unit="batch",
        leave=True,
        mininterval=0.2 if sys.stderr.isatty() else 30,  # a log file gets a line per 30 s
    )
    epoch_start = time.perf_counter()
    seen = correct = 0
    loss_sum = 0.0
    for step in bar:
        batch = order[step * config.batch_size : (step + 1) * config.batch_size]
        x = augment_batch(images[batch].astype(np.float32), config.augmentation, rng)
        x = net.preprocess(x)
        optimizer.lr = one_cycle(
            epoch * steps_per_epoch + step, total_steps, config.lr, config.warmup
        )
        loss, grads, batch_correct = _step(net, workers, x, labels[batch], config.label_smoothing)
        optimizer.step(grads)
        seen += len(batch)
        correct += batch_correct
        loss_sum += loss * len(batch)
        rate = seen / (time.perf_counter() - epoch_start)
        bar.set_postfix(
            loss=f"{loss_sum / seen:.3f}",
            acc=f"{correct / seen:.3f}",
            img_s=f"{rate:.0f}",
            refresh=False,
        )
    seconds = time.perf_counter() - epoch_start
    test_accuracy = evaluate(net, test_set.images, test_set.labels, workers.workers).accuracy
    return EpochLog(
        epoch + 1, loss_sum / seen, correct / seen, test_accuracy, seen / seconds, seconds
    )


def _step(
    net: Network, workers: GradientWorkers, x: np.ndarray, y: np.ndarray, smoothing: float
) -> tuple[float, dict[str, np.ndarray], int]:
    """Loss, gradients and how many of the batch the network got right."""
    loss, grads, scores = workers.loss_and_scores(net, x, y, smoothing)
    return loss, grads, int((scores.argmax(axis=1) == y).sum())


def _model_card(
    config, net, train_set, test_set, history, accuracy, wall_seconds
) -> dict[str, Any]:
    return {
        "model": config.model,
        "architecture": repr(net),
        "layers": [layer.config() for layer in net.layers],
        "classes": net.classes,
        "input": list(net.input_shape),
        "normalization": net.normalization,
        "command": _command(config),
        "dataset": {
            # The file's name and hash, not where it lay on the machine that trained.
            "name": Path(train_set.source).name,
            "sha256": train_set.sha256,
            "train_images": int(len(train_set.labels) if not config.limit else config.limit),
            "test_images": int(len(test_set.labels)),
        },
        "training": {
            key: value
            for key, value in asdict(config).items()
            if key not in ("data", "out", "checkpoint")
        },
        "epochs": config.epochs,
        "history": [asdict(log) for log in history],
        "test_accuracy": accuracy,
        "wall_time_seconds": round(wall_seconds, 1),
        "trained_on": f"{platform.machine()} {platform.processor() or platform.system()}",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _command(config: TrainConfig) -> str:
    """The convscope train command that makes these weights, options left at the model's
    recipe omitted (so the README's default command reads as it is printed there)."""
    recipe = TrainConfig.for_model(config.model, config.data)
    changed = [
        f"--{key.replace('_', '-')} {value}"
        for key, value in asdict(config).items()
        if key in ("epochs", "batch_size", "lr", "seed", "label_smoothing", "limit")
        and value != getattr(recipe, key)
    ]
    data = Path(config.data).name if Path(config.data).is_absolute() else config.data
    return " ".join(["convscope train --model", config.model, "--data", data, *changed])


def _save_checkpoint(config, net, optimizer, epoch: int, history: list[EpochLog]) -> None:
    path = config.checkpoint_path
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"epoch": epoch, "config": asdict(config), "history": [asdict(h) for h in history]}
    arrays = {f"weights.{k}": v for k, v in net.state_dict().items()}
    arrays.update(optimizer.state_dict())
    partial = path.with_name(path.name + ".partial.npz")
    np.savez(partial, meta=np.array(json.dumps(meta)), **arrays)
    partial.replace(path)  # atomic: an interrupted save never spoils the last checkpoint


def _load_checkpoint(config, net, optimizer) -> tuple[int, list[EpochLog]]:
    with np.load(config.checkpoint_path, allow_pickle=False) as saved:
        meta = json.loads(str(saved["meta"]))
        for key in (
            "model",
            "epochs",
            "batch_size",
            "lr",
            "seed",
            "augmentation",
            "label_smoothing",
        ):
            if meta["config"].get(key, 0.0) != getattr(config, key):
                raise ValueError(
                    f"checkpoint {config.checkpoint_path} was made with"
                    f" {key}={meta['config'][key]!r}, this run asks for {getattr(config, key)!r}:"
                    " use the same options or another --checkpoint"
                )
        net.load_state_dict(
            {k[len("weights.") :]: saved[k] for k in saved.files if k.startswith("weights.")}
        )
        optimizer.load_state_dict({k: saved[k] for k in saved.files if k.startswith("velocity.")})
    return meta["epoch"], [EpochLog(**h) for h in meta["history"]]


def _say(message: str, progress: bool) -> None:
    if progress:
        tqdm.write(message)
