"""Dataset loaders: image folders, the CIFAR-10 python batches and MNIST IDX files.

`load_split(path, split)` looks inside `path` (a directory or a tar archive) and reads
whichever of the three formats it finds, each a module with the same functions
(`Format` in dataset.py; `load(tree, root, request) -> Loaded`):

- folder.py, image folder: `<split>/<class>/<image>`, optionally under one wrapper directory;
- cifar.py, CIFAR-10 "python version": `data_batch_1..5`, `test_batch`, `batches.meta`
  (pickles, read with a restricted unpickler that only builds dicts, lists and NumPy arrays);
- mnist.py, MNIST: `train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`, `t10k-...`.

Decoded image folders are cached as .npz files (cache.py, no pickle) so the second load is
fast. NumPy, Pillow and the standard library only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from model.training.datasets import cifar, folder, mnist
from model.training.datasets.cache import cache_path, default_cache_dir, read_cache, write_cache
from model.training.datasets.dataset import SPLITS, Dataset, Format, Loaded, Request, hwc
from model.training.datasets.hashes import file_sha256, files_sha256
from model.training.datasets.tree import Tree, listing

CIFAR10_CLASSES = cifar.CLASSES
MNIST_CLASSES = mnist.CLASSES
# In the order they are recognised: a folder with CIFAR or MNIST files is that format.
FORMATS: dict[str, Format] = {fmt.NAME: fmt for fmt in (cifar, mnist, folder)}

__all__ = [
    "CIFAR10_CLASSES",
    "FORMATS",
    "MNIST_CLASSES",
    "SPLITS",
    "Dataset",
    "Format",
    "Loaded",
    "Request",
    "dataset_sha256",
    "default_cache_dir",
    "load_split",
]


def load_split(
    path: str | os.PathLike,
    split: str,
    classes: Sequence[str] | None = None,
    *,
    channels: int | None = None,
    size: tuple[int, int] | None = None,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> Dataset:
    """Load the `split` ("train" or "test") of the dataset at `path`.

    path: a directory or a tar archive (.tar, .tar.gz, ...) holding an image folder, the
        CIFAR-10 python batches or MNIST IDX files; the format is found from the contents.
    classes: the class names in label order. Default: the dataset's own (image folders:
        sorted folder names). When given, labels are indices into it, matched by name.
    channels: 1 (grey) or 3 (RGB); image folders are converted, the binary formats must
        already match. Default: 3 for image folders, the native count otherwise.
    size: (H, W); image folders are resized to it, the binary formats must already match.
        Without it, every image of a folder must have the same size.
    cache, cache_dir: keep an image folder's decoded arrays in `cache_dir` (default
        $CONVSCOPE_CACHE_DIR or ~/.cache/convscope), keyed by the source, split and options.
    progress: show a progress bar while decoding a large folder (only on a terminal).
    """
    path = Path(path).expanduser()
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    if classes is not None:
        classes = list(classes)
        if len(set(classes)) != len(classes):
            raise ValueError(f"classes has duplicates: {classes}")
    if not path.exists():
        raise FileNotFoundError(f"no dataset at {path}")

    archive_sha256 = file_sha256(path) if path.is_file() else None
    options = {"split": split, "classes": classes, "channels": channels, "size": size}
    cache_file = None
    if cache:
        cache_file = cache_path(path, archive_sha256, options, cache_dir)
        cached = read_cache(cache_file, path, split)
        if cached is not None:
            return cached

    tree = Tree(path, keep=lambda name: any(f.might_need(name, split) for f in FORMATS.values()))
    fmt, root = _detect(tree)
    loaded = FORMATS[fmt].load(tree, root, Request(split, channels, size, progress))
    _check_native(fmt, loaded, channels, size)
    labels, names = loaded.labels, loaded.classes
    if classes is not None:
        labels = _relabel(labels, names, classes)
        names = classes

    digest = archive_sha256 or files_sha256(path, loaded.files)
    dataset = Dataset(loaded.images, labels, names, str(path), digest, split, fmt)
    if cache_file is not None and fmt == folder.NAME:  # the others are arrays already
        write_cache(cache_file, dataset)
    return dataset


def dataset_sha256(path: str | os.PathLike, split: str | None = None) -> str:
    """Hex sha256 identifying a dataset, as stored in `Dataset.sha256`.

    An archive: the archive file's sha256. A directory: a hash over the sorted relative
    paths and contents of the split's files (every file when `split` is None).
    """
    path = Path(path).expanduser()
    if path.is_file():
        return file_sha256(path)
    tree = Tree(path)
    if split is None:
        return files_sha256(path, tree.files)
    fmt, root = _detect(tree)
    return files_sha256(path, FORMATS[fmt].split_files(tree, root, split))


def _format_of(tree: Tree, folder: str) -> str | None:
    return next((name for name, fmt in FORMATS.items() if fmt.matches(tree, folder)), None)


def _detect(tree: Tree) -> tuple[str, str]:
    """Find the format and its root folder: the top, or one wrapper directory below it."""
    found = _format_of(tree, "")
    if found:
        return found, ""
    top_dirs, top_files = tree.children("")
    matches = [(fmt, d) for d in top_dirs if (fmt := _format_of(tree, d))]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ValueError(
            f"{tree.path} holds several datasets ({', '.join(d for _, d in matches)}); "
            "pass the one to use"
        )
    raise FileNotFoundError(
        f"no dataset found in {tree.path}: expected train/ and test/ folders of class "
        "folders, the CIFAR-10 python batches or MNIST IDX files; found "
        f"{listing(top_dirs, top_files)}"
    )


def _check_native(fmt: str, loaded: Loaded, channels, size) -> None:
    """The binary formats are not converted: they must already be what was asked for."""
    images, labels, names = loaded.images, loaded.labels, loaded.classes
    if fmt != folder.NAME:
        h, w, c = images.shape[1:]
        if (channels is not None and channels != c) or (size is not None and tuple(size) != (h, w)):
            asked = f"{hwc(size or (h, w))}x{channels or c}"
            raise ValueError(f"{fmt} images are {h}x{w}x{c}, not {asked} as asked")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(names)):
        raise ValueError(
            f"labels run from {labels.min()} to {labels.max()} but there are {len(names)} classes"
        )


def _relabel(labels: np.ndarray, names: list[str], classes: list[str]) -> np.ndarray:
    """Labels indexing `names` -> labels indexing `classes`, matched by class name."""
    unknown = [n for n in names if n not in classes]
    if unknown:
        raise ValueError(f"class(es) {', '.join(unknown)} of the dataset are not in {classes}")
    return np.array([classes.index(n) for n in names], dtype=np.int64)[labels]
