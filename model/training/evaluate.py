"""Accuracy of a network on labelled images: overall, per class and as a confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.network import Network
from model.training.parallel import ShardRunner


@dataclass
class Evaluation:
    accuracy: float
    count: int
    confusion: np.ndarray  # (classes, classes): row = true class, column = predicted
    classes: list[str]

    @property
    def per_class(self) -> dict[str, float]:
        totals = self.confusion.sum(axis=1)
        return {
            name: float(self.confusion[i, i] / totals[i]) if totals[i] else float("nan")
            for i, name in enumerate(self.classes)
        }

    def as_dict(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "count": self.count,
            "per_class": self.per_class,
            "classes": self.classes,
            "confusion": self.confusion.tolist(),
        }

    def table(self) -> str:
        """Per-class accuracy and the confusion matrix, as aligned text."""
        width = max(len(name) for name in self.classes) + 1
        lines = [f"accuracy {self.accuracy:.2%} on {self.count} images", ""]
        lines.append(f"{'class':<{width}} accuracy")
        for name, accuracy in self.per_class.items():
            lines.append(f"{name:<{width}} {accuracy:8.2%}")
        lines += ["", "confusion (rows: true class, columns: predicted)"]
        short = [name[:5] for name in self.classes]
        lines.append(" " * width + " ".join(f"{s:>5}" for s in short))
        for name, row in zip(self.classes, self.confusion, strict=True):
            lines.append(f"{name:<{width}}" + " ".join(f"{v:>5d}" for v in row))
        return "\n".join(lines)


def predict_classes(
    net: Network, images: np.ndarray, workers: int | None = None, batch_size: int = 250
) -> np.ndarray:
    """The predicted class index for each uint8 image (N, H, W, D), batches on threads."""
    batches = [images[i : i + batch_size] for i in range(0, len(images), batch_size)]
    with ShardRunner(workers) as runner:
        classes = runner.map(lambda b: net.predict(net.preprocess(b)).argmax(axis=1), batches)
    return np.concatenate(classes)


def evaluate(
    net: Network, images: np.ndarray, labels: np.ndarray, workers: int | None = None
) -> Evaluation:
    """Accuracy and confusion of net on uint8 images (N, H, W, D) with int labels (N,)."""
    predicted = predict_classes(net, images, workers)
    n_classes = len(net.classes) or int(labels.max()) + 1
    confusion = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    classes = net.classes or [str(i) for i in range(n_classes)]
    return Evaluation(float((predicted == labels).mean()), len(labels), confusion, classes)
