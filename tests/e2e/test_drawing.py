"""Digits drawn with the mouse on the pad, 0 to 9, as a learner draws them: each is read
right by the shipped mnist model (the strokes are benchmarks/digit_strokes.py's, which
benchmarks/drawn_digits.py also renders in many jittered copies)."""

import pytest
from playwright.sync_api import Page, expect

from benchmarks.digit_strokes import DIGITS
from tests.e2e import test_viewer
from tests.e2e.test_viewer import Viewer

pytestmark = pytest.mark.browser
viewer_on = test_viewer.viewer_on  # the viewer page's fixtures, shared with its tests
viewer = test_viewer.viewer


def draw_digit(page: Page, digit: int) -> None:
    """Draw `digit` stroke by stroke with the mouse, a pointer event every few pixels."""
    box = page.locator("#draw-pad").bounding_box()
    for stroke in DIGITS[digit]:
        x, y = stroke[0]
        page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"])
        page.mouse.down()
        for (x0, y0), (x1, y1) in zip(stroke[:-1], stroke[1:], strict=True):
            for step in range(1, 6):
                t = step / 5
                page.mouse.move(
                    box["x"] + (x0 + t * (x1 - x0)) * box["width"],
                    box["y"] + (y0 + t * (y1 - y0)) * box["height"],
                )
        page.mouse.up()


def test_the_ten_digits_drawn_with_the_mouse_are_read_right(viewer: Viewer) -> None:
    viewer.open("?model=mnist")
    page = viewer.page
    page.locator("#tab-draw").click()
    for digit in DIGITS:
        page.locator("#draw-clear").click()
        draw_digit(page, digit)
        # The last lift runs the network on the whole digit; its reading is the one kept.
        expect(page.locator(".prediction-class")).to_have_text(str(digit))
