"""Draw each shipped model's training history (loss and accuracies per epoch) as a PNG for
the README, from its model card: the same chart the page's model card draws in SVG.

    python scripts/plot_history.py [--out docs] [MODEL ...]

Writes docs/history-<model>.png; a model without trained weights or history is skipped.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from model.weights import SHIPPED_DIR, shipped_models

WIDTH, HEIGHT, PAD = 640, 300, 52
BACKGROUND, GRID, TEXT = (20, 28, 42), (42, 57, 81), (163, 178, 200)
LOSS, TRAIN, TEST = (230, 159, 0), (47, 191, 143), (86, 180, 233)  # the page's kind colours


def font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:  # no DejaVu on this machine: Pillow's own font
        return ImageFont.load_default(size)


def plot(card: dict, out: Path) -> None:
    history = card["history"]
    n, max_loss = len(history), max(h["loss"] for h in history)
    image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    small = font(13)

    def x(i: int) -> float:
        return PAD + (i * (WIDTH - 2 * PAD) / (n - 1) if n > 1 else 0)

    def y(fraction: float) -> float:
        return HEIGHT - PAD - fraction * (HEIGHT - 2 * PAD)

    for fraction in (0, 0.25, 0.5, 0.75, 1):
        draw.line([(PAD, y(fraction)), (WIDTH - PAD, y(fraction))], fill=GRID)
        draw.text(
            (WIDTH - PAD + 6, y(fraction)), f"{fraction:.0%}", fill=TEXT, font=small, anchor="lm"
        )
        draw.text(
            (PAD - 6, y(fraction)), f"{fraction * max_loss:.2g}", fill=LOSS, font=small, anchor="rm"
        )
    for i in sorted({0, (n - 1) // 2, n - 1}):
        draw.text(
            (x(i), HEIGHT - PAD + 8), str(history[i]["epoch"]), fill=TEXT, font=small, anchor="mt"
        )
    draw.text((WIDTH / 2, HEIGHT - 14), "epoch", fill=TEXT, font=small, anchor="mm")
    for key, colour, scale in (
        ("loss", LOSS, max_loss),
        ("train_accuracy", TRAIN, 1),
        ("test_accuracy", TEST, 1),
    ):
        points = [(x(i), y(h[key] / scale)) for i, h in enumerate(history)]
        draw.line(points, fill=colour, width=3, joint="curve")
    title = f"{card['model']}: {card['test_accuracy']:.2%} test accuracy after {n} epochs"
    draw.text((PAD, 18), title, fill=(233, 238, 246), font=font(14), anchor="lm")
    for offset, (label, colour) in enumerate((("loss", LOSS), ("train", TRAIN), ("test", TEST))):
        left = WIDTH - PAD - 200 + offset * 70
        draw.line([(left, 40), (left + 18, 40)], fill=colour, width=4)
        draw.text((left + 22, 40), label, fill=TEXT, font=small, anchor="lm")
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=shipped_models())
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    for model_id in args.models:
        card_path = SHIPPED_DIR / f"{model_id}.json"
        card = json.loads(card_path.read_text()) if card_path.exists() else {}
        if not card.get("history"):
            print(f"{model_id}: no trained weights with a history, skipped")
            continue
        out = args.out / f"history-{model_id}.png"
        plot(card, out)
        print(f"{model_id}: {out}")


if __name__ == "__main__":
    main()
