"""Dataset loaders: image folders, the CIFAR-10 python batches and MNIST IDX files.

`load_split(path, split)` looks inside `path` (a directory or a tar archive) and reads
whichever of the three formats it finds:

- image folder: `<split>/<class>/<image>`, optionally under one wrapper directory;
- CIFAR-10 "python version": `data_batch_1..5`, `test_batch`, `batches.meta` (pickles,
  read with a restricted unpickler that only builds dicts, lists and NumPy arrays);
- MNIST: `train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`, `t10k-...`.

Decoded arrays are cached as .npz files (no pickle) so the second load is fast.
NumPy, Pillow and the standard library only.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import posixpath
import re
import struct
import sys
import tarfile
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

SPLITS = ("train", "test")
CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip
MNIST_CLASSES = [str(d) for d in range(10)]

_CACHE_VERSION = 1  # bump when the decoded arrays would change for the same input
_PROGRESS_MIN = 1000  # no progress bar for small folders: it would only flash
_CIFAR_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
_CIFAR_FILES = {"batches.meta", "test_batch", *_CIFAR_BATCHES["train"]}
_MNIST_NAME = re.compile(r"^(train|t10k)-(images|labels)[-.]idx[13]-ubyte(\.gz)?$")
_MNIST_PREFIX = {"train": "train", "test": "t10k"}


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
            f"Dataset({self.format} {self.split}: {len(self)} images {_hwc(self.shape)}, "
            f"{len(self.classes)} classes, from {self.source})"
        )

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, C) of one image."""
        return tuple(self.images.shape[1:])


# ---------------------------------------------------------------------------- public API


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

    archive_sha256 = _file_sha256(path) if path.is_file() else None
    options = {"split": split, "classes": classes, "channels": channels, "size": size}
    cache_file = None
    if cache:
        cache_file = _cache_path(path, archive_sha256, options, cache_dir)
        cached = _read_cache(cache_file, path, split)
        if cached is not None:
            return cached

    tree = _Tree(path, keep=lambda name: _maybe_needed(name, split))
    fmt, root = _detect(tree)
    loader = {"image-folder": _load_folder, "cifar-python": _load_cifar, "mnist-idx": _load_mnist}
    images, labels, names, files = loader[fmt](tree, root, split, channels, size, progress)
    _check_native(fmt, images, labels, names, channels, size)
    if classes is not None:
        labels = _relabel(labels, names, classes)
        names = classes

    digest = archive_sha256 or _files_sha256(path, files)
    dataset = Dataset(images, labels, names, str(path), digest, split, fmt)
    if cache_file is not None and fmt == "image-folder":  # the others are arrays already
        _write_cache(cache_file, dataset)
    return dataset


def dataset_sha256(path: str | os.PathLike, split: str | None = None) -> str:
    """Hex sha256 identifying a dataset, as stored in `Dataset.sha256`.

    An archive: the archive file's sha256. A directory: a hash over the sorted relative
    paths and contents of the split's files (every file when `split` is None).
    """
    path = Path(path).expanduser()
    if path.is_file():
        return _file_sha256(path)
    tree = _Tree(path)
    if split is None:
        return _files_sha256(path, tree.files)
    fmt, root = _detect(tree)
    return _files_sha256(path, _split_files(tree, fmt, root, split))


# ------------------------------------------------------------------- files of a dataset


class _Tree:
    """The files of a directory or tar archive, by relative POSIX path.

    A tar is read in one streaming pass; the bytes of members for which `keep(name)` is
    true are held in memory so they need not be read again.
    """

    def __init__(self, path: Path, keep: Callable[[str], bool] = lambda name: False):
        self.path = path
        self.files: list[str] = []
        self.dirs: set[str] = set()
        self._blobs: dict[str, bytes] = {}
        if path.is_dir():
            self._walk_dir()
        elif tarfile.is_tarfile(path):
            self._walk_tar(keep)
        else:
            raise ValueError(f"{path} is neither a directory nor a tar archive")
        for name in [*self.files, *self.dirs]:  # a tar need not list its directories
            parent = posixpath.dirname(name)
            while parent and parent not in self.dirs:
                self.dirs.add(parent)
                parent = posixpath.dirname(parent)
        self.files.sort()

    def _walk_dir(self) -> None:
        for dirpath, dirnames, filenames in os.walk(self.path):
            dirnames[:] = [d for d in dirnames if not _hidden(d)]
            rel = Path(dirpath).relative_to(self.path).as_posix()
            prefix = "" if rel == "." else rel + "/"
            self.dirs.update(prefix + d for d in dirnames)
            self.files.extend(prefix + f for f in filenames if not _hidden(f))

    def _walk_tar(self, keep: Callable[[str], bool]) -> None:
        with tarfile.open(self.path, "r|*") as tar:  # streaming: no seeks, no extraction
            for member in tar:
                name = posixpath.normpath(member.name).lstrip("/")
                if name in ("", ".") or any(_hidden(part) for part in name.split("/")):
                    continue
                if member.isdir():
                    self.dirs.add(name)
                elif member.isfile():
                    self.files.append(name)
                    if keep(name):
                        self._blobs[name] = tar.extractfile(member).read()

    def children(self, folder: str) -> tuple[list[str], list[str]]:
        """Names of the directories and files directly inside `folder` ("" = the top)."""
        prefix = folder + "/" if folder else ""

        def direct(names: Iterable[str]) -> list[str]:
            rest = (n[len(prefix) :] for n in names if n.startswith(prefix))
            return [r for r in rest if "/" not in r]

        return sorted(direct(self.dirs)), direct(self.files)

    def read(self, name: str) -> bytes:
        if name in self._blobs:
            return self._blobs.pop(name)  # read once: let the memory go
        if self.path.is_dir():
            return (self.path / name).read_bytes()
        with tarfile.open(self.path, "r:*") as tar:
            return tar.extractfile(name).read()


def _hidden(name: str) -> bool:
    # .DS_Store, AppleDouble ._ files and __MACOSX folders are never data
    return name.startswith(".") or name == "__MACOSX"


def _maybe_needed(name: str, split: str) -> bool:
    """Could this archive member be read for `split`? (decided before the format is known)"""
    parts = name.split("/")
    if split in parts[:2] and len(parts) >= 3:  # [wrapper/]split/class/image
        return True
    base = parts[-1]
    if base in _CIFAR_BATCHES[split] or base == "batches.meta":
        return True
    match = _MNIST_NAME.match(base)
    return bool(match) and match[1] == _MNIST_PREFIX[split]


def _detect(tree: _Tree) -> tuple[str, str]:
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
        f"{_listing(top_dirs, top_files)}"
    )


def _format_of(tree: _Tree, folder: str) -> str | None:
    subdirs, files = tree.children(folder)
    if _CIFAR_FILES.intersection(files):
        return "cifar-python"
    if any(_MNIST_NAME.match(f) for f in files):
        return "mnist-idx"
    if set(SPLITS).intersection(subdirs):
        return "image-folder"
    return None


def _split_files(tree: _Tree, fmt: str, root: str, split: str) -> list[str]:
    """The files of `split` that make up its content hash, sorted."""
    if fmt == "image-folder":
        folder = _join(root, split)
        if folder not in tree.dirs:
            _missing_split(tree, root, split)
        return [f for f in tree.files if f.startswith(folder + "/")]
    if fmt == "cifar-python":
        return sorted(_cifar_files(tree, root, split))
    return sorted(_mnist_files(tree, root, split))


def _join(root: str, name: str) -> str:
    return f"{root}/{name}" if root else name


def _listing(dirs: list[str], files: list[str], limit: int = 12) -> str:
    names = [d + "/" for d in dirs] + files
    if not names:
        return "nothing"
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _missing_split(tree: _Tree, root: str, split: str) -> None:
    subdirs, files = tree.children(root)
    raise FileNotFoundError(
        f"no {split}/ folder in {tree.path}{'/' + root if root else ''}; "
        f"found {_listing(subdirs, files)}"
    )


# ------------------------------------------------------------------------ image folders


def _load_folder(tree, root, split, channels, size, progress):
    """Decode `<root>/<split>/<class>/<image>` -> (N, H, W, C) uint8, labels, class names."""
    folder = _join(root, split)
    if folder not in tree.dirs:
        _missing_split(tree, root, split)
    names, _ = tree.children(folder)
    if not names:
        raise ValueError(f"{split}/ in {tree.path} holds no class folders")
    files = _split_files(tree, "image-folder", root, split)
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
        disable=not progress or len(members) < _PROGRESS_MIN or not sys.stderr.isatty(),
    )
    for name, label in bar:
        try:
            image = _decode(tree.read(name), mode, size)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            skipped.append(name)
            continue
        if images and image.shape != images[0].shape:
            raise ValueError(
                f"{tree.path}/{name} is {_hwc(image.shape)} but the images before it are "
                f"{_hwc(images[0].shape)}; pass size=(H, W) to resize them all"
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
    return np.stack(images), np.array(labels, dtype=np.int64), names, files


def _decode(data: bytes, mode: str, size: tuple[int, int] | None) -> np.ndarray:
    """Image bytes -> (H, W, C) uint8."""
    with Image.open(io.BytesIO(data)) as image:
        image = image.convert(mode)  # also forces the decode, so a broken file fails here
    if size is not None and image.size != (size[1], size[0]):
        image = image.resize((size[1], size[0]), Image.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    return array[:, :, None] if array.ndim == 2 else array


def _hwc(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


# ---------------------------------------------------------------- CIFAR-10 python batches


class _CifarUnpickler(pickle.Unpickler):
    """Builds only what the CIFAR-10 batches hold: dicts, lists, bytes and NumPy arrays.

    A pickle can call any importable function; this one refuses every global but the few
    that rebuild an ndarray, so a hostile "dataset" cannot run code.
    """

    def find_class(self, module: str, name: str):
        allowed = _cifar_globals()
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(
                f"refusing to unpickle {module}.{name}: a CIFAR-10 batch holds only dicts, "
                "lists and NumPy arrays"
            )
        return allowed[module, name]


def _cifar_globals() -> dict[tuple[str, str], object]:
    try:
        from numpy._core.multiarray import _reconstruct  # NumPy 2
    except ImportError:  # pragma: no cover - NumPy 1
        from numpy.core.multiarray import _reconstruct
    return {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # Python 3 writes bytes as _codecs.encode(text, "latin1") in protocol 2
        ("_codecs", "encode"): _latin1_encode,
    }


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _unpickle(data: bytes, name: str) -> dict:
    try:
        obj = _CifarUnpickler(io.BytesIO(data), encoding="bytes").load()
    except pickle.UnpicklingError as error:
        raise pickle.UnpicklingError(f"{name}: {error}") from None
    except (EOFError, ValueError, TypeError, struct.error) as error:
        raise ValueError(f"{name} is not a readable CIFAR-10 batch: {error}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{name} holds a {type(obj).__name__}, not a CIFAR-10 batch dict")
    # Python 2 pickles give bytes keys under encoding="bytes"; Python 3 ones give str
    return {_text(k): v for k, v in obj.items()}


def _cifar_files(tree: _Tree, root: str, split: str) -> list[str]:
    _, present = tree.children(root)
    batches = [_join(root, b) for b in _CIFAR_BATCHES[split] if b in present]
    if not batches:
        raise FileNotFoundError(
            f"no {' / '.join(_CIFAR_BATCHES[split])} in {tree.path}{'/' + root if root else ''}"
            f"; found {_listing([], present)}"
        )
    meta = [_join(root, "batches.meta")] if "batches.meta" in present else []
    return batches + meta


def _load_cifar(tree, root, split, channels, size, progress):
    """CIFAR-10 python batches -> (N, 32, 32, 3) uint8, labels, class names."""
    files = _cifar_files(tree, root, split)
    names = CIFAR10_CLASSES
    images, labels = [], []
    for name in files:
        batch = _unpickle(tree.read(name), name)
        if name.endswith("batches.meta"):
            if "label_names" in batch:
                names = [_text(n) for n in batch["label_names"]]
            continue
        data, batch_labels = batch.get("data"), batch.get("labels", batch.get("fine_labels"))
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.shape[1:] != (3072,):
            raise ValueError(f"{name}: 'data' must be a uint8 array (N, 3072)")
        batch_labels = np.asarray(batch_labels, dtype=np.int64)
        if batch_labels.shape != (len(data),):
            raise ValueError(f"{name}: {len(data)} images but labels of shape {batch_labels.shape}")
        images.append(data.reshape(-1, 3, 32, 32))  # rows are channel-major: R plane, G, B
        labels.append(batch_labels)
    images = np.ascontiguousarray(np.concatenate(images).transpose(0, 2, 3, 1))
    return images, np.concatenate(labels), names, files


# -------------------------------------------------------------------------------- MNIST


def _mnist_files(tree: _Tree, root: str, split: str) -> list[str]:
    _, present = tree.children(root)
    found = []
    for kind, ndim in (("images", 3), ("labels", 1)):
        stem = f"{_MNIST_PREFIX[split]}-{kind}"
        names = sorted(f for f in present if _MNIST_NAME.match(f) and f.startswith(stem))
        if not names:
            raise FileNotFoundError(
                f"no {stem}-idx{ndim}-ubyte[.gz] in {tree.path}{'/' + root if root else ''}; "
                f"found {_listing([], present)}"
            )
        found.append(_join(root, names[0]))
    return found


def _load_mnist(tree, root, split, channels, size, progress):
    """MNIST IDX files -> (N, 28, 28, 1) uint8, labels, class names."""
    files = _mnist_files(tree, root, split)
    images = _parse_idx(tree.read(files[0]), files[0], ndim=3)
    labels = _parse_idx(tree.read(files[1]), files[1], ndim=1).astype(np.int64)
    if len(images) != len(labels):
        raise ValueError(f"{files[0]} has {len(images)} images but {files[1]} {len(labels)} labels")
    return images[..., None], labels, MNIST_CLASSES, files


def _parse_idx(data: bytes, name: str, ndim: int) -> np.ndarray:
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
            f"{name}: header says {_hwc(shape)} = {expected} bytes, but the file has {len(data)}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


# ------------------------------------------------------------------------------- checks


def _check_native(fmt, images, labels, names, channels, size) -> None:
    """The binary formats are not converted: they must already be what was asked for."""
    if fmt != "image-folder":
        h, w, c = images.shape[1:]
        if (channels is not None and channels != c) or (size is not None and tuple(size) != (h, w)):
            asked = f"{_hwc(size or (h, w))}x{channels or c}"
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


# -------------------------------------------------------------------------------- hashes


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _files_sha256(root: Path, names: Iterable[str]) -> str:
    """sha256 over sorted relative paths and contents (each length-prefixed, so unambiguous)."""
    digest = hashlib.sha256()
    for name in sorted(names):
        data = (root / name).read_bytes()
        digest.update(struct.pack(">Q", len(name.encode())) + name.encode())
        digest.update(struct.pack(">Q", len(data)) + data)
    return digest.hexdigest()


# --------------------------------------------------------------------------------- cache


def default_cache_dir() -> Path:
    """$CONVSCOPE_CACHE_DIR, else $XDG_CACHE_HOME/convscope, else ~/.cache/convscope."""
    if os.environ.get("CONVSCOPE_CACHE_DIR"):
        return Path(os.environ["CONVSCOPE_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "convscope"


def _cache_path(path: Path, archive_sha256: str | None, options: dict, cache_dir) -> Path:
    # An archive is keyed by its contents. A directory by its files' names, sizes and
    # modification times: hashing 50,000 small files would cost more than the cache saves.
    if archive_sha256:
        source = archive_sha256
    else:
        source = [str(path.resolve())]
        for name in _Tree(path).files:
            stat = (path / name).stat()
            source.append((name, stat.st_size, stat.st_mtime_ns))
    key = json.dumps([_CACHE_VERSION, source, options], sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", path.name)[:40]
    return Path(cache_dir or default_cache_dir()) / f"{stem}-{options['split']}-{digest}.npz"


def _read_cache(cache_file: Path, path: Path, split: str) -> Dataset | None:
    try:
        with np.load(cache_file, allow_pickle=False) as npz:
            return Dataset(
                npz["images"],
                npz["labels"],
                npz["classes"].tolist(),
                str(path),
                str(npz["sha256"]),
                split,
                str(npz["format"]),
            )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None  # a broken cache file is rebuilt, not fatal


def _write_cache(cache_file: Path, dataset: Dataset) -> None:
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    # write then rename, so a concurrent reader never sees half a file
    fd, tmp = tempfile.mkstemp(dir=cache_file.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(
                f,
                images=dataset.images,
                labels=dataset.labels,
                classes=np.array(dataset.classes, dtype=str),
                sha256=np.array(dataset.sha256),
                format=np.array(dataset.format),
            )
        os.replace(tmp, cache_file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
