"""Digits 0-9 as the mouse draws them on the page's pad: polylines in pad coordinates.

Shared by the e2e drawing test (which draws them with Playwright's mouse) and
benchmarks/drawn_digits.py (which renders many jittered copies the way the pad does).
Coordinates are fractions of the pad, x to the right and y down; a digit is a list of
strokes, a stroke a list of (x, y) points joined by straight lines.
"""

from __future__ import annotations

import math

Stroke = list[tuple[float, float]]


def _ellipse(cx: float, cy: float, rx: float, ry: float, points: int = 18) -> Stroke:
    return [
        (cx + rx * math.sin(2 * math.pi * i / points), cy - ry * math.cos(2 * math.pi * i / points))
        for i in range(points + 1)
    ]


DIGITS: dict[int, list[Stroke]] = {
    0: [_ellipse(0.5, 0.5, 0.2, 0.33)],
    1: [[(0.4, 0.26), (0.52, 0.15), (0.52, 0.86)]],
    2: [
        [
            (0.3, 0.3),
            (0.37, 0.18),
            (0.5, 0.14),
            (0.64, 0.18),
            (0.7, 0.3),
            (0.66, 0.45),
            (0.3, 0.85),
            (0.74, 0.85),
        ]
    ],
    3: [
        [
            (0.3, 0.2),
            (0.45, 0.14),
            (0.63, 0.17),
            (0.69, 0.3),
            (0.62, 0.43),
            (0.46, 0.48),
            (0.63, 0.54),
            (0.71, 0.66),
            (0.67, 0.8),
            (0.5, 0.86),
            (0.3, 0.8),
        ]
    ],
    4: [[(0.58, 0.15), (0.27, 0.62), (0.77, 0.62)], [(0.62, 0.36), (0.62, 0.88)]],
    5: [
        [
            (0.7, 0.15),
            (0.35, 0.15),
            (0.32, 0.45),
            (0.5, 0.41),
            (0.66, 0.49),
            (0.71, 0.65),
            (0.64, 0.8),
            (0.48, 0.86),
            (0.3, 0.8),
        ]
    ],
    6: [
        [
            (0.64, 0.15),
            (0.46, 0.25),
            (0.34, 0.44),
            (0.3, 0.65),
            (0.36, 0.82),
            (0.5, 0.87),
            (0.64, 0.8),
            (0.69, 0.65),
            (0.6, 0.52),
            (0.45, 0.52),
            (0.33, 0.62),
        ]
    ],
    7: [[(0.25, 0.2), (0.75, 0.2), (0.4, 0.85)]],
    8: [
        [
            (0.5, 0.5),
            (0.36, 0.4),
            (0.34, 0.25),
            (0.5, 0.14),
            (0.66, 0.25),
            (0.64, 0.4),
            (0.5, 0.5),
            (0.32, 0.62),
            (0.32, 0.78),
            (0.5, 0.87),
            (0.68, 0.78),
            (0.68, 0.62),
            (0.5, 0.5),
        ]
    ],
    9: [
        [
            (0.67, 0.3),
            (0.6, 0.17),
            (0.46, 0.15),
            (0.33, 0.25),
            (0.33, 0.4),
            (0.46, 0.47),
            (0.62, 0.42),
            (0.67, 0.3),
            (0.65, 0.56),
            (0.6, 0.87),
        ]
    ],
}
