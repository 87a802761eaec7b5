"""What every loader returns, and the one signature every format module implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np

from model.training.datasets.tree import Tree

SPLITS = ("train", "test")


@dataclass
class Dataset:
    """One split of a dataset, decoded.

    images: uint8 (N, H, W, C), C = 1 (grey) or 3 (RGB)
    labels: int64 (N,), indices into `classes`
    sha256: hex digest of the dataset file (archive) or of the split's files (directory)
    """

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    source: str
    sha256: str
    split: str = ""
    format: str = ""

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.labels.shape != (len(self.images),):
            raise ValueError(
                f"images must be (N, H, W, C) and labels (N,), got {self.images.shape} "
                f"and {self.labels.shape}"
            )

    def __repr__(self) -> str:
        return (
            f"Dataset({self.format} {self.split}: {len(self)} images {hwc(self.shape)}, "
            f"{len(self.classes)} classes, from {self.source})"
        )

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, C) of one image."""
        return tuple(self.images.shape[1:])


@dataclass(frozen=True)
class Request:
    """What the caller of load_split asked for (see there)."""

    split: str
    channels: int | None = None
    size: tuple[int, int] | None = None
    progress: bool = True


class Loaded(NamedTuple):
    """A format's decoded split: uint8 (N, H, W, C) images, int64 (N,) labels indexing its
    own class names, and the files they came from (for the content hash)."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    files: list[str]


class Format(Protocol):
    """A module per on-disk format (folder.py, cifar.py, mnist.py) provides these."""

    NAME: str

    def might_need(self, name: str, split: str) -> bool:
        """Could this archive member be read for `split`? (asked before the format is known)"""

    def matches(self, tree: Tree, folder: str) -> bool:
        """Does `folder` of the tree hold a dataset in this format?"""

    def split_files(self, tree: Tree, root: str, split: str) -> list[str]:
        """The files of `split` under `root`, sorted: what its content hash covers."""

    def load(self, tree: Tree, root: str, request: Request) -> Loaded:
        """Decode the requested split of the dataset under `root`."""


def hwc(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))
