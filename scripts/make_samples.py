"""Cut the viewer's sample gallery from the datasets: a few CIFAR-10 test photos per class
and a few MNIST test digits, written under static/samples/ with an index.json manifest.

    python scripts/make_samples.py [--data ../shared/datasets] [--out static/samples]

The CIFAR-10 JPEG files are copied byte for byte; MNIST digits are written as 28x28
grayscale PNGs (white ink on black, as in the dataset). The output is deterministic.
"""

import argparse
import gzip
import io
import json
import struct
import tarfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
CIFAR_CLASSES = "airplane automobile bird cat deer dog frog horse ship truck".split()


def cifar_samples(archive: Path, per_class: int) -> dict[str, list[tuple[str, bytes]]]:
    """{class: [(file name, JPEG bytes), ...]}: the first `per_class` test images of each."""
    wanted = {name: [] for name in CIFAR_CLASSES}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if len(parts) != 4 or parts[:2] != ["cifar10", "test"] or not member.isfile():
                continue
            label, file_name = parts[2], parts[3]
            if label in wanted and len(wanted[label]) < per_class:
                wanted[label].append((file_name, tar.extractfile(member).read()))
            if all(len(files) == per_class for files in wanted.values()):
                break
    return wanted


def mnist_samples(folder: Path, per_digit: int) -> dict[int, list[tuple[int, bytes]]]:
    """{digit: [(test index, 28x28 uint8 pixels), ...]}: the first `per_digit` of each."""
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz") as f:
        magic, count = struct.unpack(">II", f.read(8))
        labels = f.read(count)
    with gzip.open(folder / "t10k-images-idx3-ubyte.gz") as f:
        magic, count, rows, cols = struct.unpack(">IIII", f.read(16))
        pixels = f.read(count * rows * cols)
    size = rows * cols
    wanted: dict[int, list[tuple[int, bytes]]] = {digit: [] for digit in range(10)}
    for index, digit in enumerate(labels):
        if len(wanted[digit]) < per_digit:
            wanted[digit].append((index, pixels[index * size : (index + 1) * size]))
    return wanted


def png(pixels: bytes, width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.frombytes("L", (width, height), pixels).save(out, format="PNG", optimize=True)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--out", type=Path, default=ROOT / "static" / "samples")
    parser.add_argument("--cifar-per-class", type=int, default=3)
    parser.add_argument("--mnist-per-digit", type=int, default=2)
    args = parser.parse_args()

    samples = []
    for label, files in cifar_samples(
        args.data / "cifar10-jpg.tar.gz", args.cifar_per_class
    ).items():
        for file_name, data in files:
            path = Path("cifar10") / f"{label}-{file_name}"
            (args.out / path).parent.mkdir(parents=True, exist_ok=True)
            (args.out / path).write_bytes(data)
            samples.append(
                {
                    "id": f"cifar10-{label}-{Path(file_name).stem}",
                    "model": "cifar10",
                    "label": label,
                    "file": path.as_posix(),
                    "source": f"CIFAR-10 test/{label}/{file_name}",
                }
            )
    for digit, digits in mnist_samples(args.data / "mnist", args.mnist_per_digit).items():
        for index, pixels in digits:
            path = Path("mnist") / f"{digit}-{index:04d}.png"
            (args.out / path).parent.mkdir(parents=True, exist_ok=True)
            (args.out / path).write_bytes(png(pixels, 28, 28))
            samples.append(
                {
                    "id": f"mnist-{digit}-{index:04d}",
                    "model": "mnist",
                    "label": str(digit),
                    "file": path.as_posix(),
                    "source": f"MNIST t10k image {index}",
                }
            )
    manifest = {"base": "/static/samples/", "samples": samples}
    (args.out / "index.json").write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"{len(samples)} samples, {total / 1024:.1f} KiB in {args.out}")


if __name__ == "__main__":
    main()
