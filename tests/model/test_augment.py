"""Batch augmentations against direct, per-image references."""

import numpy as np
import pytest

from model.training.augment import (
    random_affine,
    random_crop,
    random_flip,
    random_shift,
    random_stroke_width,
)


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


def test_affine_without_motion_is_the_identity():
    images = batch(4, 8, 8, 1)
    out = random_affine(images, np.random.default_rng(0), 0.0, (1.0, 1.0), 0.0)
    np.testing.assert_allclose(out, images)


def test_affine_rotation_matches_a_loop():
    images = batch(3, 7, 7, 2)
    out = random_affine(images, np.random.default_rng(0), 90.0, (1.0, 1.0), 0.0)
    angles = np.random.default_rng(0).uniform(-90.0, 90.0, 3)
    for i, image in enumerate(images):
        np.testing.assert_allclose(out[i], loop_rotate(image, angles[i]), rtol=1e-5, atol=1e-3)


def loop_rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    """Each output pixel samples the source bilinearly at its rotated place, zero outside."""
    h, w, _ = image.shape
    t = np.deg2rad(degrees)
    out = np.zeros_like(image)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    for r in range(h):
        for q in range(w):
            y = np.cos(t) * (r - cy) - np.sin(t) * (q - cx) + cy
            x = np.sin(t) * (r - cy) + np.cos(t) * (q - cx) + cx
            for yy in (int(np.floor(y)), int(np.floor(y)) + 1):
                for xx in (int(np.floor(x)), int(np.floor(x)) + 1):
                    weight = max(0.0, 1 - abs(y - yy)) * max(0.0, 1 - abs(x - xx))
                    if 0 <= yy < h and 0 <= xx < w:
                        out[r, q] += weight * image[yy, xx]
    return out


def test_affine_shift_moves_the_ink_by_the_drawn_amount():
    image = np.zeros((1, 9, 9, 1), np.float32)
    image[0, 4, 4] = 1.0
    out = random_affine(image, np.random.default_rng(4), 0.0, (1.0, 1.0), 2.0)
    rng = np.random.default_rng(4)
    rng.uniform(size=2)  # the angle and the zoom come first
    dy, dx = rng.uniform(-2.0, 2.0, (2, 1))[:, 0]
    ink = out[0, :, :, 0]
    assert ink.sum() == pytest.approx(1.0, abs=1e-5)
    rows, cols = np.indices(ink.shape)
    assert (ink * rows).sum() == pytest.approx(4 + dy, abs=1e-5)
    assert (ink * cols).sum() == pytest.approx(4 + dx, abs=1e-5)


def test_stroke_width_thickens_and_thins_by_the_draw():
    images = np.zeros((12, 6, 6, 1), np.float32)
    images[:, 2:4, 2:4] = 1.0
    out = random_stroke_width(images, np.random.default_rng(7))
    draw = np.random.default_rng(7).random(12)
    for i in range(12):
        if draw[i] < 0.25:  # the 2x2 max grows the square to 3x3
            assert out[i].sum() == 9.0
        elif draw[i] < 0.5:  # the 2x2 min keeps its one top-left pixel, averaged in
            assert out[i].sum() == pytest.approx(0.5 * 4 + 0.5 * 1)
        else:
            np.testing.assert_array_equal(out[i], images[i])
