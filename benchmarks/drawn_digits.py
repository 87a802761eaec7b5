"""How well a digits model reads digits drawn with the mouse on the page's pad.

    python -m benchmarks.drawn_digits [--model mnist] [--copies 5] [--seed 0]

Each digit of benchmarks/digit_strokes.py is drawn as the pad draws it (white round-capped
lines, 1/13 of the pad wide, on black, 280x280, antialiased), once as written and then
`--copies` times moved, scaled, slanted, re-inked thinner or thicker and sampled the way a
hand moves a mouse (points a few pixels apart, each a little off the line). Every drawing
goes through the server's upload path (PNG, then `app.imaging.prepare`), as the page's Draw
tab sends it, and the model's reading is compared with the digit meant.
"""

from __future__ import annotations

import argparse
import io

import numpy as np
from PIL import Image, ImageDraw

import model
from app import imaging
from benchmarks.digit_strokes import DIGITS, Stroke

PAD = 280
SUPERSAMPLE = 4  # drawn 4x larger and shrunk: the browser's canvas antialiases its lines


def render(strokes: list[Stroke], width: float = PAD / 13) -> bytes:
    """The pad's PNG for these strokes (fractions of the pad), as the page would send it."""
    size = PAD * SUPERSAMPLE
    image = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(image)
    w = width * SUPERSAMPLE
    for stroke in strokes:
        points = [(x * size, y * size) for x, y in stroke]
        draw.line(points, fill=255, width=round(w), joint="curve")
        for x, y in points:  # round caps and joints, as lineCap = lineJoin = "round"
            draw.ellipse((x - w / 2, y - w / 2, x + w / 2, y + w / 2), fill=255)
    buffer = io.BytesIO()
    image.resize((PAD, PAD), Image.Resampling.BOX).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


def as_mouse_drew_it(strokes: list[Stroke], rng: np.random.Generator) -> tuple[list[Stroke], float]:
    """A hand's copy: moved, scaled, slanted, resampled every few pixels with a tremor;
    and the line width the pad would draw (here varied, as different pens would be)."""
    scale = rng.uniform(0.75, 1.1)
    slant = rng.uniform(-0.2, 0.2)
    dx, dy = rng.uniform(-0.1, 0.1, 2)
    copy: list[Stroke] = []
    for stroke in strokes:
        points = np.array(stroke)
        dense = [points[0]]
        for a, b in zip(points[:-1], points[1:], strict=True):
            steps = max(1, int(np.linalg.norm(b - a) * PAD / 6))  # a pointer event every ~6 px
            dense += [a + (b - a) * t for t in np.linspace(0, 1, steps + 1)[1:]]
        dense = np.array(dense) + rng.normal(0, 0.004, (len(dense), 2))
        x = (dense[:, 0] - 0.5) * scale + slant * (0.5 - dense[:, 1]) + 0.5 + dx
        y = (dense[:, 1] - 0.5) * scale + 0.5 + dy
        copy.append(list(zip(x.tolist(), y.tolist(), strict=True)))
    return copy, PAD / 13 * rng.uniform(0.7, 1.4)


def read(net: model.Network, png: bytes) -> int:
    x = imaging.prepare(png, net.input_shape, digits=True, max_pixels=10**7)
    return int(net.predict(net.preprocess(x[None].astype(np.float32))).argmax())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mnist")
    parser.add_argument("--copies", type=int, default=5, help="jittered copies of each digit")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    net = model.load(args.model)
    rng = np.random.default_rng(args.seed)
    as_written = {digit: read(net, render(strokes)) for digit, strokes in DIGITS.items()}
    misread = [f"{d}->{r}" for d, r in as_written.items() if d != r]
    print(f"{args.model}: the ten digits as written: {10 - len(misread)}/10 read right", end="")
    print(f" (misread: {', '.join(misread)})" if misread else "")

    right = total = 0
    wrong: list[str] = []
    for digit, strokes in DIGITS.items():
        for _ in range(args.copies):
            copy, width = as_mouse_drew_it(strokes, rng)
            reading = read(net, render(copy, width))
            right += reading == digit
            total += 1
            if reading != digit:
                wrong.append(f"{digit}->{reading}")
    print(f"  {total} mouse-like copies: {right}/{total} = {right / total:.1%} read right")
    if wrong:
        print(f"  misread: {', '.join(wrong)}")


if __name__ == "__main__":
    main()
