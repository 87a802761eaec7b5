"""A channel index on disk: one JSON file and one sprite sheet (PNG) per layer, no pickle.

    <weights>.channels/index.json
    <weights>.channels/layer-04-pool1.png   rows: channels, columns: rank 1..k; each cell
                                             one patch of patch_size x patch_size pixels

index.json holds the weights' sha256 (model/channels/visualize.py `weights_sha256`), so a
reader can tell an index made for other weights; the dataset it was made from; and per
layer and channel the top positions as [image, row, col, value], where image indexes
"images": [{"path": inside the dataset's archive or folder, "label": class index}].
"""

from __future__ import annotations

import json
import os
import posixpath
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from model.channels.index import ChannelIndex

FORMAT = "convscope.channel-index"
VERSION = 1
INDEX_FILE = "index.json"


def sprite_name(index: int, name: str) -> str:
    return f"layer-{index:02d}-{name}.png"


def write_index(
    directory: str | os.PathLike,
    index: ChannelIndex,
    *,
    model: str,
    weights_sha256: str,
    dataset: dict[str, Any],
    paths: list[str],
    labels: np.ndarray,
    classes: list[str],
) -> Path:
    """Write index.json and the sprites into directory (made if missing); index.json is
    written last, under a temporary name then renamed, so a reader never sees a new index
    with old sprites."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    used = sorted({int(n) for layer in index.layers for n in layer.images.ravel()})
    slot = {n: i for i, n in enumerate(used)}
    layers = []
    for layer in index.layers:
        size = layer.field.size
        depth, k = layer.values.shape
        channels = layer.patches.shape[-1]
        sheet = np.zeros((depth * size, k * size, channels), np.uint8)
        for d in range(depth):
            for rank in range(k):
                cell = sheet[d * size : (d + 1) * size, rank * size : (rank + 1) * size]
                cell[...] = layer.patches[d, rank]
        sprite = sprite_name(layer.index, layer.name)
        _save_png(directory / sprite, sheet)
        layers.append(
            {
                "index": layer.index,
                "name": layer.name,
                "kind": layer.kind,
                "patch_size": size,
                "receptive_field": vars(layer.field),
                "sprite": sprite,
                "channels": [
                    [
                        [slot[int(n)], int(r), int(c), float(v)]
                        for n, r, c, v in zip(
                            layer.images[d],
                            layer.rows[d],
                            layer.cols[d],
                            layer.values[d],
                            strict=True,
                        )
                    ]
                    for d in range(depth)
                ],
            }
        )
    document = {
        "format": FORMAT,
        "version": VERSION,
        "model": model,
        "weights_sha256": weights_sha256,
        "top": index.k,
        "dataset": {**dataset, "count": index.count},
        "classes": classes,
        "pad_value": [int(v) for v in index.pad_value],
        "images": [{"index": n, "path": paths[n], "label": int(labels[n])} for n in used],
        "layers": layers,
    }
    partial = directory / (INDEX_FILE + ".partial")
    partial.write_text(json.dumps(document, separators=(",", ":")) + "\n")
    partial.replace(directory / INDEX_FILE)
    return directory / INDEX_FILE


def read_index(directory: str | os.PathLike) -> dict[str, Any]:
    """index.json of directory; FileNotFoundError if there is none, ValueError if it is not
    a channel index this code reads."""
    document = json.loads((Path(directory) / INDEX_FILE).read_text())
    if document.get("format") != FORMAT or document.get("version") != VERSION:
        raise ValueError(f"{directory}/{INDEX_FILE} is not a version {VERSION} channel index")
    return document


def read_sprite(path: str | os.PathLike) -> np.ndarray:
    """A sprite sheet as (H, W, C) uint8."""
    with Image.open(path) as image:
        pixels = np.asarray(image)
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


def _save_png(path: Path, pixels: np.ndarray) -> None:
    mode = "L" if pixels.shape[2] == 1 else "RGB"
    partial = path.with_name(path.name + ".partial")
    Image.fromarray(pixels[:, :, 0] if mode == "L" else pixels, mode).save(
        partial, format="PNG", optimize=True
    )
    partial.replace(path)


def image_paths(path: str | os.PathLike, split: str, fmt: str, count: int) -> list[str]:
    """Where each image of a loaded split lies inside the dataset at path, in the loader's
    order (model/training/datasets: sorted paths; the binary formats in file order):
    "cifar10/test/cat/0042.jpg" for an image folder, "t10k-images-idx3-ubyte.gz#42" (the
    file, then the image's place in it) for MNIST or CIFAR-10 batches. Falls back to
    "<split>#<n>" when the listing does not match the loaded count (unreadable images were
    skipped)."""
    names = _names(Path(path))
    if fmt == "image-folder":
        found = sorted(n for n in names if _in_split_folder(n, split))
        if len(found) == count:
            return found
    elif fmt == "mnist-idx":
        prefix = "t10k-images" if split == "test" else "train-images"
        files = sorted(n for n in names if posixpath.basename(n).startswith(prefix))
        if files:
            return [f"{files[0]}#{i}" for i in range(count)]
    elif fmt == "cifar-python" and split == "test":
        files = [n for n in names if posixpath.basename(n) == "test_batch"]
        if files:
            return [f"{files[0]}#{i}" for i in range(count)]
    return [f"{split}#{i}" for i in range(count)]


def _in_split_folder(name: str, split: str) -> bool:
    parts = name.split("/")
    if any(p.startswith(".") or p == "__MACOSX" for p in parts):
        return False
    for at in (0, 1):  # <split>/<class>/<image> or <wrapper>/<split>/<class>/<image>
        if len(parts) == at + 3 and parts[at] == split:
            return True
    return False


def _names(path: Path) -> list[str]:
    if path.is_dir():
        return [
            (Path(dirpath) / f).relative_to(path).as_posix()
            for dirpath, _, files in os.walk(path)
            for f in files
        ]
    with tarfile.open(path, "r|*") as tar:
        return [posixpath.normpath(m.name).lstrip("/") for m in tar if m.isfile()]
