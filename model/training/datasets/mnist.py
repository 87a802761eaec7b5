"""MNIST IDX files: `train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`, `t10k-...`."""

from __future__ import annotations

import gzip
import re
import struct

import numpy as np

from model.training.datasets.dataset import Loaded, Request, hwc
from model.training.datasets.tree import Tree, join, listing

NAME = "mnist-idx"
CLASSES = [str(d) for d in range(10)]
_FILE_NAME = re.compile(r"^(train|t10k)-(images|labels)[-.]idx[13]-ubyte(\.gz)?$")
_PREFIX = {"train": "train", "test": "t10k"}


def might_need(name: str, split: str) -> bool:
    match = _FILE_NAME.match(name.split("/")[-1])
    return bool(match) and match[1] == _PREFIX[split]


def matches(tree: Tree, folder: str) -> bool:
    _, files = tree.children(folder)
    return any(_FILE_NAME.match(f) for f in files)


def split_files(tree: Tree, root: str, split: str) -> list[str]:
    return sorted(_files(tree, root, split))


def _files(tree: Tree, root: str, split: str) -> list[str]:
    """[images file, labels file] of the split."""
    _, present = tree.children(root)
    found = []
    for kind, ndim in (("images", 3), ("labels", 1)):
        stem = f"{_PREFIX[split]}-{kind}"
        names = sorted(f for f in present if _FILE_NAME.match(f) and f.startswith(stem))
        if not names:
            raise FileNotFoundError(
                f"no {stem}-idx{ndim}-ubyte[.gz] in {tree.where(root)}; "
                f"found {listing([], present)}"
            )
        found.append(join(root, names[0]))
    return found


def load(tree: Tree, root: str, request: Request) -> Loaded:
    """MNIST IDX files -> (N, 28, 28, 1) uint8, labels, class names."""
    files = _files(tree, root, request.split)
    images = parse_idx(tree.read(files[0]), files[0], ndim=3)
    labels = parse_idx(tree.read(files[1]), files[1], ndim=1).astype(np.int64)
    if len(images) != len(labels):
        raise ValueError(f"{files[0]} has {len(images)} images but {files[1]} {len(labels)} labels")
    return Loaded(images[..., None], labels, CLASSES, files)


def parse_idx(data: bytes, name: str, ndim: int) -> np.ndarray:
    """IDX bytes (gzipped or not) -> uint8 array of the shape its header gives."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as error:
            raise ValueError(f"{name}: broken gzip data: {error}") from None
    # header: two zero bytes, element type (0x08 = unsigned byte), ndim, then ndim big-endian sizes
    magic = 0x0800 | ndim
    if len(data) < 4 or struct.unpack(">I", data[:4])[0] != magic:
        raise ValueError(
            f"{name}: bad magic number 0x{data[:4].hex()}, expected 0x{magic:08x} "
            f"(IDX, unsigned bytes, {ndim} dimension{'s' if ndim > 1 else ''})"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{name}: truncated IDX header ({len(data)} bytes)")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise ValueError(
            f"{name}: header says {hwc(shape)} = {expected} bytes, but the file has {len(data)}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()
