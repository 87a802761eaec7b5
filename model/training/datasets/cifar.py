"""The CIFAR-10 "python version": `data_batch_1..5`, `test_batch`, `batches.meta`, pickles
read with a restricted unpickler that only builds dicts, lists and NumPy arrays."""

from __future__ import annotations

import io
import pickle
import struct

import numpy as np

from model.training.datasets.dataset import Loaded, Request
from model.training.datasets.tree import Tree, join, listing

NAME = "cifar-python"
CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip
_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
_FILES = {"batches.meta", "test_batch", *_BATCHES["train"]}


def might_need(name: str, split: str) -> bool:
    base = name.split("/")[-1]
    return base in _BATCHES[split] or base == "batches.meta"


def matches(tree: Tree, folder: str) -> bool:
    _, files = tree.children(folder)
    return bool(_FILES.intersection(files))


def split_files(tree: Tree, root: str, split: str) -> list[str]:
    return sorted(_files(tree, root, split))


def _files(tree: Tree, root: str, split: str) -> list[str]:
    """The split's batches in order, then batches.meta if there is one."""
    _, present = tree.children(root)
    batches = [join(root, b) for b in _BATCHES[split] if b in present]
    if not batches:
        raise FileNotFoundError(
            f"no {' / '.join(_BATCHES[split])} in {tree.where(root)}; found {listing([], present)}"
        )
    meta = [join(root, "batches.meta")] if "batches.meta" in present else []
    return batches + meta


def load(tree: Tree, root: str, request: Request) -> Loaded:
    """CIFAR-10 python batches -> (N, 32, 32, 3) uint8, labels, class names."""
    files = _files(tree, root, request.split)
    names = CLASSES
    images, labels = [], []
    for name in files:
        batch = unpickle(tree.read(name), name)
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
    return Loaded(images, np.concatenate(labels), names, files)


class _CifarUnpickler(pickle.Unpickler):
    """Builds only what the CIFAR-10 batches hold: dicts, lists, bytes and NumPy arrays.

    A pickle can call any importable function; this one refuses every global but the few
    that rebuild an ndarray, so a hostile "dataset" cannot run code.
    """

    def find_class(self, module: str, name: str):
        allowed = _allowed_globals()
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(
                f"refusing to unpickle {module}.{name}: a CIFAR-10 batch holds only dicts, "
                "lists and NumPy arrays"
            )
        return allowed[module, name]


def _allowed_globals() -> dict[tuple[str, str], object]:
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


def unpickle(data: bytes, name: str) -> dict:
    """One batch's pickle -> its dict (str keys); UnpicklingError for anything but data."""
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
