"""Image folders: `<split>/<class>/<image>`, optionally under one wrapper directory."""

from __future__ import annotations

import io
import sys
import warnings

import numpy as np
from PIL import Image
from tqdm import tqdm

from model.training.datasets.dataset import SPLITS, Loaded, Request, hwc
from model.training.datasets.tree import Tree, join, listing

NAME = "image-folder"
_PROGRESS_MIN = 1000  # no progress bar for small folders: it would only flash


def might_need(name: str, split: str) -> bool:
    parts = name.split("/")
    return split in parts[:2] and len(parts) >= 3  # [wrapper/]split/class/image


def matches(tree: Tree, folder: str) -> bool:
    subdirs, _ = tree.children(folder)
    return bool(set(SPLITS).intersection(subdirs))


def split_files(tree: Tree, root: str, split: str) -> list[str]:
    folder = join(root, split)
    if folder not in tree.dirs:
        subdirs, files = tree.children(root)
        raise FileNotFoundError(
            f"no {split}/ folder in {tree.where(root)}; found {listing(subdirs, files)}"
        )
    return [f for f in tree.files if f.startswith(folder + "/")]


def load(tree: Tree, root: str, request: Request) -> Loaded:
    """Decode `<root>/<split>/<class>/<image>` -> (N, H, W, C) uint8, labels, class names."""
    split, channels, size = request.split, request.channels, request.size
    files = split_files(tree, root, split)
    folder = join(root, split)
    names, _ = tree.children(folder)
    if not names:
        raise ValueError(f"{split}/ in {tree.path} holds no class folders")
    label_of = {name: i for i, name in enumerate(names)}
    members = []  # (file, label); files lying loose in the split folder have no class
    for name in files:
        parts = name[len(folder) + 1 :].split("/")
        if len(parts) > 1:
            members.append((name, label_of[parts[0]]))
    counts = np.bincount([label for _, label in members], minlength=len(names))
    if empty := [names[i] for i in np.flatnonzero(counts == 0)]:
        raise ValueError(f"empty class folder(s) in {tree.path}/{folder}: {', '.join(empty)}")

    mode = "L" if channels == 1 else "RGB"
    images, labels, skipped = [], [], []
    bar = tqdm(
        members,
        desc=f"decoding {split}",
        unit="img",
        disable=not request.progress or len(members) < _PROGRESS_MIN or not sys.stderr.isatty(),
    )
    for name, label in bar:
        try:
            image = decode(tree.read(name), mode, size)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            skipped.append(name)
            continue
        if images and image.shape != images[0].shape:
            raise ValueError(
                f"{tree.path}/{name} is {hwc(image.shape)} but the images before it are "
                f"{hwc(images[0].shape)}; pass size=(H, W) to resize them all"
            )
        images.append(image)
        labels.append(label)
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} unreadable images in {tree.path}: first: {skipped[0]}",
            stacklevel=3,
        )
    empty = sorted(set(range(len(names))) - set(labels))
    if empty:
        raise ValueError(
            f"no readable images for class(es) {', '.join(names[i] for i in empty)} "
            f"in {tree.path}/{folder}"
        )
    return Loaded(np.stack(images), np.array(labels, dtype=np.int64), names, files)


def decode(data: bytes, mode: str, size: tuple[int, int] | None) -> np.ndarray:
    """Image bytes -> (H, W, C) uint8."""
    with Image.open(io.BytesIO(data)) as image:
        image = image.convert(mode)  # also forces the decode, so a broken file fails here
    if size is not None and image.size != (size[1], size[0]):
        image = image.resize((size[1], size[0]), Image.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    return array[:, :, None] if array.ndim == 2 else array
