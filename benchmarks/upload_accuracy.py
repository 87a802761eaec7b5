"""What the upload path costs a model in accuracy: the test split as the trainer sees it
against the same images sent through the server's preprocessing (encoded as PNG, then
`app.imaging.prepare`, as `POST /api/models/{id}/forward` does).

    python benchmarks/upload_accuracy.py [--model mnist] [--data ../shared/datasets/mnist]

For mnist the upload path re-finds the digit, fits it into a 20x20 box and centres it by
mass, so that photos and drawings look like MNIST; on MNIST itself it should change little.
For cifar10 it is a centre crop and resize, the identity on 32x32 images.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

import model
from app import imaging
from model.training.datasets import load_split
from model.training.evaluate import evaluate

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = {
    "mnist": ROOT.parent / "shared" / "datasets" / "mnist",
    "cifar10": ROOT.parent / "shared" / "datasets" / "cifar10-jpg.tar.gz",
}


def through_upload(images: np.ndarray, net: model.Network) -> np.ndarray:
    """Each image as PNG bytes through the server's preprocessing: (N, H, W, D) uint8."""
    digits = net.input_style == "digits"
    prepared = []
    for pixels in images:
        buffer = io.BytesIO()
        Image.fromarray(pixels.squeeze(-1) if pixels.shape[-1] == 1 else pixels).save(buffer, "PNG")
        prepared.append(
            imaging.prepare(buffer.getvalue(), net.input_shape, digits=digits, max_pixels=10**8)
        )
    return np.stack(prepared)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mnist", choices=sorted(DEFAULT_DATA))
    parser.add_argument("--data", type=Path)
    args = parser.parse_args()

    net = model.load(args.model)
    data = load_split(args.data or DEFAULT_DATA[args.model], "test", net.classes, progress=False)
    uploaded = through_upload(data.images, net)
    changed = np.abs(uploaded.astype(int) - data.images).mean()
    print(f"{args.model}, {len(data)} test images")
    print(f"  as trained:        {evaluate(net, data.images, data.labels).accuracy:.2%}")
    print(f"  through an upload: {evaluate(net, uploaded, data.labels).accuracy:.2%}")
    print(f"  mean pixel change: {changed:.1f} of 255")


if __name__ == "__main__":
    main()
