"""Are the feature visualisations readable? For each conv, relu and pool layer of a model:
the share of channels whose activation on their visualisation beats all of their top 9
dataset patches, and what a visualisation costs.

    python benchmarks/channel_views.py [--model cifar10] [--data PATH] [--per-layer N | --all]
        [--set NAME=VALUE ...] [--stored]

The top patches come from the model's index (`convscope index`) when it is there and made
for these weights, else one is built here over the whole test split (not written). A patch's
activation is its neuron's value; a visualisation's is the channel's mean over all its
positions (what the ascent climbs) and, for reference, its largest single neuron. Like for
like, the channel's mean over all positions is also taken on the whole source image of each
top patch (the same statistic on an image of the same size). The channels measured are
spread evenly over each layer (`--per-layer`), or all of them.

Every channel is its own ascent, relu and pool channels included (model/channels/
visualize.py). `--set` changes one of the settings (VisSettings) for every layer, e.g.
`--set decay_power=1.5 --set jitter=0`; the default is the server's settings. `--stored`
measures the pictures `convscope visualize` wrote beside the weights for these weights and
settings (the same bytes as climbing again, which it does not: no CPU column).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

import model
from model.channels import INDEXED_KINDS, VisSettings, build_index, visualize, weights_sha256
from model.channels.files import read_index, read_sprite
from model.training.datasets import load_split
from model.weights import SHIPPED_DIR

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = {
    "mnist": ROOT.parent / "shared" / "datasets" / "mnist",
    "cifar10": ROOT.parent / "shared" / "datasets" / "cifar10-jpg.tar.gz",
    "cs231n": ROOT.parent / "shared" / "datasets" / "cifar10-jpg.tar.gz",
}


def top_patches(
    net: model.Network, model_id: str, data: Path
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray], np.ndarray]:
    """Per indexed layer, (D, 9) top activations and (D, 9) the test images they lie in,
    and the test split's images."""
    test = load_split(data, "test", net.classes, channels=net.input_shape[2], progress=False)
    try:
        document = read_index(SHIPPED_DIR / f"{model_id}.channels")
        if document["weights_sha256"] == weights_sha256(net):
            print(f"top patches: the index of {document['dataset']['count']} images")
            numbers = [image["index"] for image in document["images"]]
            values, images = {}, {}
            for layer in document["layers"]:
                top = np.array(layer["channels"])  # (D, 9, [slot, row, col, value])
                values[layer["index"]] = top[:, :, 3]
                images[layer["index"]] = np.array(numbers)[top[:, :, 0].astype(int)]
            return values, images, test.images
        print("the index was made for other weights: building one here")
    except FileNotFoundError:
        print("no index: building one here")
    started = time.perf_counter()
    found = build_index(net, test.images)
    print(f"indexed {len(test)} images in {time.perf_counter() - started:.1f} s")
    values = {layer.index: layer.values for layer in found.layers}
    return values, {layer.index: layer.images for layer in found.layers}, test.images


def image_means(net: model.Network, images: np.ndarray, layers: set[int]) -> dict[int, np.ndarray]:
    """Per layer in `layers`, (N, D): each channel's mean over all positions on each image."""
    means: dict[int, list[np.ndarray]] = {i: [] for i in layers}
    for start in range(0, len(images), 100):
        x = net.preprocess(images[start : start + 100])
        for i, current in enumerate(net.layers[: max(layers) + 1]):
            x = current.forward(x)
            if i in layers:
                means[i].append(x.mean(axis=(1, 2)))
    return {i: np.concatenate(m) for i, m in means.items()}


def stored_image(net: model.Network, model_id: str, layer: int, channel: int, settings):
    """The last frame of the stored visualisation (`convscope visualize`)."""
    folder = SHIPPED_DIR / f"{model_id}.channels" / "visualizations"
    folder = folder / weights_sha256(net)[:16] / settings.key()
    meta = json.loads((folder / f"{layer:02d}-{channel:03d}.json").read_text())
    strip = read_sprite(folder / meta["strip"])
    return strip[:, -strip.shape[0] :]


def _setting(text: str) -> tuple[str, object]:
    name, _, value = text.partition("=")
    default = getattr(VisSettings(), name)  # an AttributeError names a setting that is not
    return name, (
        value.lower() in ("1", "true") if isinstance(default, bool) else type(default)(value)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="cifar10")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--per-layer", type=int, default=8, help="channels measured per layer")
    parser.add_argument("--all", action="store_true", help="every channel of every layer")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="a setting changed"
    )
    parser.add_argument("--stored", action="store_true", help="measure the stored pictures")
    args = parser.parse_args()
    net = model.load(args.model)
    tops, sources, test_images = top_patches(net, args.model, args.data or DEFAULT_DATA[args.model])
    used = np.unique(np.concatenate([n.ravel() for n in sources.values()]))
    means = image_means(net, test_images[used], set(tops))
    row_of = {int(n): k for k, n in enumerate(used)}
    settings = VisSettings(**dict(_setting(text) for text in args.set))
    changed = ", ".join(args.set) or "the server's"
    made = "stored pictures" if args.stored else f"{settings.steps} steps"
    print(f"\n{args.model}, settings {settings.key()} ({changed}; {made})\n")
    print(
        "| layer | channels measured | mean beats all top 9 | max neuron beats all top 9 "
        "| median mean / top 1 | mean beats mean on all top 9 images | CPU s per channel |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    totals = [0, 0, 0]
    for i, layer in enumerate(net.layers):
        if layer.kind not in INDEXED_KINDS:
            continue
        depth = layer.output_shape[2]
        count = depth if args.all else min(args.per_layer, depth)
        channels = sorted({int(round(c)) for c in np.linspace(0, depth - 1, count)})
        beats_mean = beats_max = beats_images = 0
        ratios, seconds = [], []
        for d in channels:
            if args.stored:
                image = stored_image(net, args.model, i, d, settings)
            else:
                cpu = time.process_time()
                image = visualize(net, i, d, settings).image
                seconds.append(time.process_time() - cpu)
            x = net.preprocess(image[None])
            for current in net.layers[: i + 1]:
                x = current.forward(x)
            activation = float(x[0, :, :, d].mean())  # what visualize() reports
            best_patch = float(tops[i][d].max())
            beats_mean += activation > best_patch
            beats_max += float(x[0, :, :, d].max()) > best_patch
            on_images = means[i][[row_of[int(n)] for n in sources[i][d]], d]
            beats_images += activation > float(on_images.max())
            if best_patch > 0:
                ratios.append(activation / best_patch)
        n = len(channels)
        totals[0] += beats_mean
        totals[1] += beats_images
        totals[2] += n
        median = f"{statistics.median(ratios):.2f}" if ratios else "-"
        cpu_column = f"{statistics.mean(seconds):.2f}" if seconds else "-"
        print(
            f"| {layer.name} | {n} of {depth} | {beats_mean / n:.0%} | {beats_max / n:.0%} | "
            f"{median} | {beats_images / n:.0%} | {cpu_column} |",
            flush=True,
        )
    print(
        f"\nall layers: the mean beats all top 9 for {totals[0]} of {totals[2]} channels, "
        f"the mean on all top 9 images for {totals[1]}"
    )


if __name__ == "__main__":
    main()
