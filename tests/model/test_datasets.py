"""Dataset loaders on tiny data made here: image folders, CIFAR-10 pickles, MNIST IDX."""

import gzip
import hashlib
import os
import pickle
import struct
import tarfile
import warnings

import numpy as np
import pytest
from PIL import Image

from model.training import datasets
from model.training.datasets import cifar, dataset_sha256, folder, load_split

CLASSES = ["cat", "dog", "frog"]


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    """Never write to the real ~/.cache from a test."""
    monkeypatch.setenv("CONVSCOPE_CACHE_DIR", str(tmp_path / "cache"))


# ------------------------------------------------------------------------- data makers


def pixels(label: int, index: int, size=(4, 5)) -> np.ndarray:
    """A (H, W, 3) uint8 image that encodes its class and index, so order can be checked."""
    h, w = size
    image = np.zeros((h, w, 3), np.uint8)
    image[..., 0] = 10 * label + index
    image[..., 1] = np.arange(w, dtype=np.uint8)  # columns differ: a transpose would show
    image[..., 2] = np.arange(h, dtype=np.uint8)[:, None]
    return image


def make_folder(root, splits=("train", "test"), per_class=2, classes=CLASSES):
    """root/<split>/<class>/<i>.png (lossless, so pixel values survive)."""
    for split in splits:
        for label, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(pixels(label, i)).save(folder / f"{i}.png")
    return root


def expected_folder(per_class=2, classes=CLASSES):
    images = [pixels(label, i) for label in range(len(classes)) for i in range(per_class)]
    labels = [label for label in range(len(classes)) for _ in range(per_class)]
    return np.stack(images), np.array(labels)


def make_tar(src, archive, wrapper: str | None):
    """Archive the contents of `src`, at the top or inside one `wrapper` directory."""
    with tarfile.open(archive, "w:gz") as tar:
        for entry in sorted(src.iterdir()):
            tar.add(entry, arcname=f"{wrapper}/{entry.name}" if wrapper else entry.name)
    return archive


def cifar_rows(images: np.ndarray) -> np.ndarray:
    """(N, 32, 32, 3) -> (N, 3072) in the official channel-major order."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), 3072)


def write_pickle(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def make_cifar(folder, rng, per_batch=4):
    """A cifar-10-batches-py folder with two train batches, a test batch and the meta file."""
    folder.mkdir(parents=True)
    made = {}
    for name in ("data_batch_1", "data_batch_2", "test_batch"):
        images = rng.integers(0, 256, (per_batch, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, per_batch).tolist()
        write_pickle(folder / name, {b"data": cifar_rows(images), b"labels": labels})
        made[name] = (images, labels)
    names = [c.encode() for c in datasets.CIFAR10_CLASSES]
    write_pickle(folder / "batches.meta", {b"label_names": names})
    return made


def idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def make_mnist(folder, rng, gz: bool, n=(6, 3)):
    folder.mkdir(parents=True, exist_ok=True)
    made = {}
    for prefix, count in zip(("train", "t10k"), n, strict=True):
        images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, count).astype(np.uint8)
        for kind, array, ndim in (("images", images, 3), ("labels", labels, 1)):
            data = idx_bytes(array)
            name = f"{prefix}-{kind}-idx{ndim}-ubyte"
            if gz:
                data, name = gzip.compress(data), name + ".gz"
            (folder / name).write_bytes(data)
        made[prefix] = (images, labels)
    return made


# ------------------------------------------------------------------------ image folders


def test_image_folder_directory(tmp_path):
    root = make_folder(tmp_path / "pets")
    ds = load_split(root, "train")
    images, labels = expected_folder()
    assert ds.images.dtype == np.uint8 and ds.images.shape == (6, 4, 5, 3)
    assert ds.labels.dtype == np.int64
    np.testing.assert_array_equal(ds.images, images)
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.classes == CLASSES and ds.format == "image-folder" and len(ds) == 6
    assert ds.sha256 == dataset_sha256(root, "train")


@pytest.mark.parametrize("wrapper", [None, "pets"])
def test_image_folder_tar(tmp_path, wrapper):
    src = make_folder(tmp_path / "src")
    archive = make_tar(src, tmp_path / "pets.tar.gz", wrapper)
    ds = load_split(archive, "test", cache=False)
    images, labels = expected_folder()
    np.testing.assert_array_equal(ds.images, images)
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.sha256 == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert dataset_sha256(archive) == ds.sha256


def test_given_classes_set_the_label_order(tmp_path):
    root = make_folder(tmp_path / "pets", splits=("train",))
    order = ["frog", "cat", "dog", "bird"]  # bird has no folder: allowed, it just has no images
    ds = load_split(root, "train", classes=order, cache=False)
    assert ds.classes == order
    np.testing.assert_array_equal(ds.labels, [1, 1, 2, 2, 0, 0])


def test_folder_not_in_given_classes_is_an_error(tmp_path):
    root = make_folder(tmp_path / "pets", splits=("train",))
    with pytest.raises(ValueError, match="frog"):
        load_split(root, "train", classes=["cat", "dog"], cache=False)


def test_grey_and_resize(tmp_path):
    root = make_folder(tmp_path / "pets", splits=("train",))
    ds = load_split(root, "train", channels=1, size=(8, 6), cache=False)
    assert ds.images.shape == (6, 8, 6, 1) and ds.images.dtype == np.uint8


def test_mixed_sizes_name_the_odd_file(tmp_path):
    root = make_folder(tmp_path / "pets", splits=("train",))
    Image.fromarray(np.zeros((7, 7, 3), np.uint8)).save(root / "train" / "dog" / "big.png")
    with pytest.raises(ValueError, match=r"dog/big\.png is 7x7x3"):
        load_split(root, "train", cache=False)
    assert load_split(root, "train", size=(4, 5), cache=False).images.shape == (7, 4, 5, 3)


def test_unreadable_images_are_skipped_with_one_warning(tmp_path):
    root = make_folder(tmp_path / "pets", splits=("train",))
    (root / "train" / "cat" / "a_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "train" / "dog" / "notes.txt").write_text("not an image")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_split(root, "train", cache=False)
    assert len(caught) == 1
    assert "skipped 2 unreadable images" in str(caught[0].message)
    assert "first: train/cat/a_broken.png" in str(caught[0].message)
    assert len(ds) == 6


def test_empty_class_folder_is_an_error(tmp_path):
    root = make_folder(tmp_path / "pets", splits=("train",))
    (root / "train" / "emu").mkdir()
    with pytest.raises(ValueError, match="empty class folder.*emu"):
        load_split(root, "train", cache=False)


def test_missing_split_is_an_error(tmp_path):
    root = make_folder(tmp_path / "pets", splits=("train",))
    with pytest.raises(FileNotFoundError, match=r"no test/ folder .*found train/"):
        load_split(root, "test", cache=False)
    with pytest.raises(ValueError, match="split must be one of"):
        load_split(root, "validation", cache=False)


def test_unknown_layout_is_an_error(tmp_path):
    (tmp_path / "stuff" / "photos").mkdir(parents=True)
    (tmp_path / "stuff" / "readme.txt").write_text("hi")
    with pytest.raises(FileNotFoundError, match=r"no dataset found .*photos/, readme\.txt"):
        load_split(tmp_path / "stuff", "train", cache=False)


# ---------------------------------------------------------------------------- the cache


def test_cache_hit_returns_the_same_arrays(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "pets", splits=("train",))
    first = load_split(root, "train")
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1

    def no_decoding(*args):
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(folder, "decode", no_decoding)
    second = load_split(root, "train")
    np.testing.assert_array_equal(second.images, first.images)
    np.testing.assert_array_equal(second.labels, first.labels)
    assert (second.classes, second.sha256) == (first.classes, first.sha256)


def test_cache_misses_when_a_file_or_option_changes(tmp_path):
    root = make_folder(tmp_path / "pets", splits=("train",))
    cache_dir = tmp_path / "elsewhere"
    load_split(root, "train", cache_dir=cache_dir)
    assert load_split(root, "train", channels=1, cache_dir=cache_dir).images.shape[-1] == 1
    image = root / "train" / "cat" / "0.png"
    Image.fromarray(np.full((4, 5, 3), 200, np.uint8)).save(image)
    os.utime(image, ns=(1, 1))  # a different mtime even on a coarse-clock file system
    assert load_split(root, "train", cache_dir=cache_dir).images[0, 0, 0, 0] == 200
    assert len(list(cache_dir.glob("*.npz"))) == 3


def test_directory_hash_covers_only_the_split(tmp_path):
    root = make_folder(tmp_path / "pets")
    before = dataset_sha256(root, "train")
    Image.fromarray(pixels(0, 9)).save(root / "test" / "cat" / "0.png")
    assert dataset_sha256(root, "train") == before
    Image.fromarray(pixels(0, 9)).save(root / "train" / "cat" / "0.png")
    assert dataset_sha256(root, "train") != before


# ----------------------------------------------------------------------------- CIFAR-10


def test_cifar_python_directory(tmp_path):
    rng = np.random.default_rng(0)
    made = make_cifar(tmp_path / "cifar-10-batches-py", rng)
    ds = load_split(tmp_path / "cifar-10-batches-py", "train")
    np.testing.assert_array_equal(
        ds.images, np.concatenate([made["data_batch_1"][0], made["data_batch_2"][0]])
    )
    np.testing.assert_array_equal(ds.labels, made["data_batch_1"][1] + made["data_batch_2"][1])
    assert ds.images.flags.c_contiguous and ds.labels.dtype == np.int64
    assert ds.classes == datasets.CIFAR10_CLASSES and ds.format == "cifar-python"


def test_cifar_python_tar_with_given_classes(tmp_path):
    rng = np.random.default_rng(1)
    made = make_cifar(tmp_path / "src" / "cifar-10-batches-py", rng)
    archive = make_tar(tmp_path / "src", tmp_path / "cifar-10-python.tar.gz", None)
    reverse = datasets.CIFAR10_CLASSES[::-1]
    ds = load_split(archive, "test", classes=reverse)
    images, labels = made["test_batch"]
    np.testing.assert_array_equal(ds.images, images)
    np.testing.assert_array_equal(ds.labels, 9 - np.array(labels))
    assert ds.classes == reverse


class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


class EvalEvil:
    def __reduce__(self):
        return (eval, ("1 + 1",))


@pytest.mark.parametrize("payload", [Evil(), EvalEvil()])
def test_restricted_unpickler_refuses_code(tmp_path, monkeypatch, payload):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    write_pickle(folder / "data_batch_1", {b"data": payload, b"labels": []})
    with pytest.raises(pickle.UnpicklingError, match=r"data_batch_1: refusing to unpickle"):
        load_split(folder, "train")
    assert not (tmp_path / "pwned").exists()


def test_restricted_unpickler_refuses_other_codecs():
    # protocol 0 with a hand-written _codecs.encode call using a codec other than latin1
    data = b"c_codecs\nencode\n(Vabc\nVrot13\ntR."
    with pytest.raises(pickle.UnpicklingError, match="rot13"):
        cifar.unpickle(data, "x")


def test_cifar_batch_with_wrong_data_is_an_error(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    write_pickle(folder / "test_batch", {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]})
    with pytest.raises(ValueError, match=r"uint8 array \(N, 3072\)"):
        load_split(folder, "test")


# -------------------------------------------------------------------------------- MNIST


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx(tmp_path, gz):
    made = make_mnist(tmp_path / "mnist", np.random.default_rng(2), gz)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        ds = load_split(tmp_path / "mnist", split)
        images, labels = made[prefix]
        assert ds.images.shape == (len(images), 28, 28, 1) and ds.images.dtype == np.uint8
        np.testing.assert_array_equal(ds.images[..., 0], images)
        np.testing.assert_array_equal(ds.labels, labels)
        assert ds.labels.dtype == np.int64 and ds.classes == datasets.MNIST_CLASSES


def test_mnist_with_a_wrapper_directory(tmp_path):
    make_mnist(tmp_path / "download" / "MNIST" / "raw", np.random.default_rng(3), gz=True)
    with pytest.raises(FileNotFoundError, match="no dataset found"):  # two levels: too deep
        load_split(tmp_path / "download", "train")
    assert len(load_split(tmp_path / "download" / "MNIST", "train")) == 6


def test_mnist_bad_magic_and_size(tmp_path):
    make_mnist(tmp_path / "mnist", np.random.default_rng(4), gz=False)
    labels = tmp_path / "mnist" / "train-labels-idx1-ubyte"
    good = labels.read_bytes()
    labels.write_bytes(good[:-1])
    with pytest.raises(ValueError, match="header says 6 = 14 bytes, but the file has 13"):
        load_split(tmp_path / "mnist", "train")
    labels.write_bytes(b"\x00\x00\x08\x03" + good[4:])
    with pytest.raises(ValueError, match="bad magic number 0x00000803, expected 0x00000801"):
        load_split(tmp_path / "mnist", "train")


def test_mnist_does_not_convert(tmp_path):
    make_mnist(tmp_path / "mnist", np.random.default_rng(5), gz=True)
    with pytest.raises(ValueError, match="28x28x1, not 32x32x3"):
        load_split(tmp_path / "mnist", "train", channels=3, size=(32, 32))
    assert len(load_split(tmp_path / "mnist", "train", channels=1, size=(28, 28))) == 6
