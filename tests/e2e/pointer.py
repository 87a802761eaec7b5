"""Pointing at a cell of an element that may still be moving: a run's layers streaming in
above it, pictures loading, a scroll settling. A box measured a moment too early sends the
pointer to the wrong row on a slow machine, so the pointer goes to a box that held still,
and again if the element moved under it."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Locator

PAUSE_MS = 40
TRIES = 50


def still_box(element: Locator, pause_ms: int = PAUSE_MS) -> dict:
    """The element's bounding box, scrolled into view, once it held still for pause_ms."""
    element.scroll_into_view_if_needed()
    box = element.bounding_box()
    for _ in range(TRIES):
        element.page.wait_for_timeout(pause_ms)
        element.scroll_into_view_if_needed()  # pictures loading above may push it out
        again = element.bounding_box()
        if again == box:
            return box
        box = again
    raise AssertionError(f"{element} never stopped moving (last box {box})")


def point_at(element: Locator, x: float, y: float, *, click: bool = False) -> dict:
    """Move the pointer (and click, if asked) to the fraction (x, y) of the element's box,
    once the box held still and stayed so under the pointer; returns that box."""
    return _point(element, lambda box: (x, y), click)


def point_at_cell(
    element: Locator, shape: tuple[int, int], row: int, col: int, *, click: bool = False
) -> dict:
    """point_at the centre of cell (row, col) of an element drawn as `shape` (rows, cols)
    square cells from its top left corner (the largest that fit its box)."""
    rows, cols = shape

    def centre(box: dict) -> tuple[float, float]:
        cell = min(box["width"] / cols, box["height"] / rows)
        return (col + 0.5) * cell / box["width"], (row + 0.5) * cell / box["height"]

    return _point(element, centre, click)


def _point(element: Locator, fraction: Callable[[dict], tuple[float, float]], click: bool) -> dict:
    """The pointer at fraction(box) of the element's still box, again if it moved under it."""
    mouse = element.page.mouse
    for _ in range(TRIES):
        box = still_box(element)
        x, y = fraction(box)
        mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"])
        if element.bounding_box() == box:
            if click:
                mouse.down()
                mouse.up()
            return box
    raise AssertionError(f"{element} kept moving under the pointer")
