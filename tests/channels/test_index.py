"""The top-k index against a brute-force search, and the receptive-field patches."""

import io
import tarfile

import numpy as np
import pytest
from PIL import Image

from model.channels import build_index, receptive_patch
from model.channels.files import image_paths, read_index, read_sprite
from model.channels.index import pad_pixel
from model.training.datasets import load_split
from tests.channels.tiny import tiny_images, tiny_network, write_test_index


def brute_force_top(volumes: np.ndarray, k: int) -> list[list[tuple[float, int, int, int]]]:
    """Per channel: every (value, image, row, col), sorted by value down, then position."""
    n, h, w, d = volumes.shape
    out = []
    for channel in range(d):
        entries = [
            (float(volumes[i, r, c, channel]), i, r, c)
            for i in range(n)
            for r in range(h)
            for c in range(w)
        ]
        entries.sort(key=lambda e: (-e[0], e[1], e[2], e[3]))
        out.append(entries[:k])
    return out


def brute_force_patch(image, rf, row, col, pad):
    """Pad the whole image by the field's size with the pad colour, then slice."""
    margin = rf.size
    h, w, c = image.shape
    big = np.empty((h + 2 * margin, w + 2 * margin, c), np.uint8)
    big[...] = pad
    big[margin : margin + h, margin : margin + w] = image
    top = int(np.ceil(rf.start + row * rf.jump - (rf.size - 1) / 2)) + margin
    left = int(np.ceil(rf.start + col * rf.jump - (rf.size - 1) / 2)) + margin
    return big[top : top + rf.size, left : left + rf.size]


def rising_images(count: int = 12) -> np.ndarray:
    """Each image brighter than the last, so every batch brings many new top values."""
    noise = tiny_images(count, seed=3) // 10
    return (noise + np.arange(count)[:, None, None, None] * 12).astype(np.uint8)


@pytest.mark.parametrize("batch_size", [1, 4, 13])
@pytest.mark.parametrize("data", ["ties", "rising"])
def test_the_top_nine_are_the_top_nine_with_ties_broken_by_position(batch_size, data) -> None:
    net = tiny_network()
    images = tiny_images() if data == "ties" else rising_images()
    found = build_index(net, images, k=9, batch_size=batch_size)
    volumes = net.forward(net.preprocess(images))
    assert [layer.index for layer in found.layers] == [0, 1, 2, 3, 4]  # not fc, softmax
    ties = 0
    for layer in found.layers:
        expected = brute_force_top(volumes[layer.index], 9)
        for d, entries in enumerate(expected):
            got = list(
                zip(
                    layer.values[d].tolist(),
                    layer.images[d].tolist(),
                    layer.rows[d].tolist(),
                    layer.cols[d].tolist(),
                    strict=True,
                )
            )
            assert got == entries, (layer.name, d)
            ties += len(entries) - len({e[0] for e in entries})
    assert ties > 20  # the data really had ties to break (a dead channel, at least)
    dead = found.layers[1]  # relu1 channel 1: zero everywhere, so its first 9 positions
    assert dead.values[1].tolist() == [0.0] * 9
    assert list(zip(dead.images[1], dead.rows[1], dead.cols[1], strict=True)) == [
        (0, 0, c) for c in range(8)
    ] + [(0, 1, 0)]


def test_patches_are_the_receptive_field_padded_with_the_networks_padding() -> None:
    net = tiny_network()
    images = tiny_images()
    found = build_index(net, images, k=9, batch_size=5)
    pad = pad_pixel(net)
    assert pad.tolist() == [100, 120, 90]
    # The pad colour is what the network's zero padding means: zero after normalising.
    assert np.abs(net.preprocess(pad[None, None, None])).max() == 0
    edges = 0
    for layer in found.layers:
        for d in range(layer.values.shape[0]):
            for rank in range(9):
                n, r, c = layer.images[d, rank], layer.rows[d, rank], layer.cols[d, rank]
                expected = brute_force_patch(images[n], layer.field, r, c, pad)
                np.testing.assert_array_equal(layer.patches[d, rank], expected)
                edges += bool((expected == pad).all(axis=2).any())
    assert edges > 0


def test_a_neuron_sees_its_patch_and_nothing_else() -> None:
    net = tiny_network(dead=False)
    images = tiny_images(4)
    rng = np.random.default_rng(5)
    layer = 3  # conv2 after a pool: an 8 x 8 field with jump 2, past the 8 x 8 image's edge
    rf = net.receptive_field(layer)
    assert (rf.size, rf.jump) == (8, 2)
    for row, col in [(0, 0), (3, 3), (1, 2)]:
        image = images[0]
        top, left, bottom, right = rf.box(row, col, 8, 8)
        changed = rng.integers(0, 256, image.shape).astype(np.uint8)
        changed[top : bottom + 1, left : right + 1] = image[top : bottom + 1, left : right + 1]
        values = net.forward(net.preprocess(np.stack([image, changed])))[layer]
        np.testing.assert_allclose(values[0, row, col], values[1, row, col], rtol=1e-5, atol=1e-4)
        # Its patch holds those pixels, and the pad colour where the field leaves the image.
        patch = receptive_patch(image, rf, row, col, pad_pixel(net))
        assert patch.shape == (8, 8, 3)
        half = (rf.size - 1) / 2
        y0 = int(np.ceil(rf.start + row * rf.jump - half))
        x0 = int(np.ceil(rf.start + col * rf.jump - half))
        inside = patch[top - y0 : bottom - y0 + 1, left - x0 : right - x0 + 1]
        np.testing.assert_array_equal(inside, image[top : bottom + 1, left : right + 1])
        outside = np.ones((8, 8), bool)
        outside[top - y0 : bottom - y0 + 1, left - x0 : right - x0 + 1] = False
        assert (patch[outside] == pad_pixel(net)).all()
        assert outside.sum() == 64 - (bottom - top + 1) * (right - left + 1) > 0


def test_the_index_files_hold_the_positions_and_patches(tmp_path) -> None:
    net = tiny_network()
    images = tiny_images()
    write_test_index(net, "tiny", tmp_path, images)
    found = build_index(net, images, k=9)
    document = read_index(tmp_path)
    assert document["top"] == 9 and document["dataset"]["count"] == len(images)
    for layer, entry in zip(found.layers, document["layers"], strict=True):
        sheet = read_sprite(tmp_path / entry["sprite"])
        size = entry["patch_size"]
        assert sheet.shape == (layer.values.shape[0] * size, 9 * size, 3)
        for d, channel in enumerate(entry["channels"]):
            for rank, (slot, row, col, value) in enumerate(channel):
                image = document["images"][slot]
                assert image["index"] == layer.images[d, rank]
                assert image["path"] == f"test/{image['index'] % 2}/{image['index']:04d}.png"
                assert (row, col) == (layer.rows[d, rank], layer.cols[d, rank])
                assert value == float(layer.values[d, rank])  # exact float32
                cell = sheet[d * size : (d + 1) * size, rank * size : (rank + 1) * size]
                np.testing.assert_array_equal(cell, layer.patches[d, rank])


def _png(value: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize("as_tar", [False, True])
def test_image_paths_follow_the_loaders_order(tmp_path, as_tar) -> None:
    root = tmp_path / "data" / "wrap"
    value = 0
    for split in ("train", "test"):
        for name in ("cat", "ant", "bee"):
            (root / split / name).mkdir(parents=True)
            for i in (3, 1, 2):
                (root / split / name / f"{i:04d}.png").write_bytes(_png(value))
                value += 1
    path = tmp_path / "data"
    if as_tar:
        path = tmp_path / "data.tar.gz"
        with tarfile.open(path, "w:gz") as tar:
            tar.add(tmp_path / "data" / "wrap", arcname="wrap")
    test = load_split(path, "test", cache=False, progress=False)
    paths = image_paths(path, "test", test.format, len(test))
    assert len(paths) == len(test) == 9
    for n, where in enumerate(paths):
        parts = where.split("/")
        assert parts[:2] == ["wrap", "test"] and test.classes[test.labels[n]] == parts[2]
        member = root / "/".join(parts[1:])
        with Image.open(member) as image:
            np.testing.assert_array_equal(np.asarray(image), test.images[n])
