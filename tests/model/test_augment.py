"""Batch augmentations against direct, per-image references."""

import numpy as np
import pytest

from model.augment import random_crop, random_flip, random_shift


def batch(n=16, h=6, w=7, c=3) -> np.ndarray:
    """Every pixel distinct, so any misplaced one shows."""
    return np.arange(n * h * w * c, dtype=np.float32).reshape(n, h, w, c)


def test_flip_known_answer():
    images = batch()
    out = random_flip(images, np.random.default_rng(0))
    flipped = np.random.default_rng(0).random(len(images)) < 0.5
    assert 0 < flipped.sum() < len(images)  # the seed exercises both branches
    for i, image in enumerate(images):
        np.testing.assert_array_equal(out[i], image[:, ::-1] if flipped[i] else image)
    np.testing.assert_array_equal(out[flipped][0, :, 0], images[flipped][0, :, -1])


def test_crop_equals_a_slice_of_the_padded_image():
    images, pad = batch(), 2
    out = random_crop(images, np.random.default_rng(1), pad=pad)
    dy, dx = np.random.default_rng(1).integers(0, 2 * pad + 1, size=(2, len(images)))
    assert len(set(zip(dy, dx, strict=True))) > 1
    for i, image in enumerate(images):
        padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
        np.testing.assert_array_equal(out[i], padded[dy[i] : dy[i] + 6, dx[i] : dx[i] + 7])


def test_crop_reflects_without_repeating_the_edge():
    row = np.array([0, 1, 2, 3], np.float32).reshape(1, 1, 4, 1).repeat(4, axis=1)
    # the padded row is 2 1 | 0 1 2 3 | 2 1; windows start at columns 0..4
    outs = {tuple(random_crop(row, np.random.default_rng(s), pad=2)[0, 0, :, 0]) for s in range(99)}
    assert len(outs) == 5
    assert (2, 1, 0, 1) in outs and (0, 1, 2, 3) in outs and (2, 3, 2, 1) in outs


def test_shift_fills_with_zeros():
    images, shift = batch(c=1) + 1, 2
    out = random_shift(images, np.random.default_rng(2), max_shift=shift)
    dy, dx = np.random.default_rng(2).integers(0, 2 * shift + 1, size=(2, len(images)))
    for i, image in enumerate(images):
        padded = np.pad(image, ((shift, shift), (shift, shift), (0, 0)))
        np.testing.assert_array_equal(out[i], padded[dy[i] : dy[i] + 6, dx[i] : dx[i] + 7])
    assert (out == 0).any()


@pytest.mark.parametrize(
    "augment", [random_flip, random_crop, random_shift], ids=["flip", "crop", "shift"]
)
def test_shapes_dtypes_and_input_untouched(augment):
    images = batch(n=5)
    before = images.copy()
    out = augment(images, np.random.default_rng(3))
    assert out.shape == images.shape and out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(images, before)
    same_seed = augment(images, np.random.default_rng(3))
    np.testing.assert_array_equal(same_seed, out)
