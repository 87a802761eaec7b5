"""Are the feature visualisations readable? For each conv, relu and pool layer of a model:
the share of channels whose activation on their visualisation beats all of their top 9
dataset patches, and what a visualisation costs.

    python benchmarks/channel_views.py [--model cifar10] [--data PATH] [--per-layer N | --all]
        [--set NAME=VALUE ...]

The top patches come from the model's index (`convscope index`) when it is there and made
for these weights, else one is built here over the whole test split (not written). A patch's
activation is its neuron's value; a visualisation's is the channel's mean over all its
positions (what the ascent climbs) and, for reference, its largest single neuron. The
channels measured are spread evenly over each layer (`--per-layer`), or all of them.

A relu or pool channel is climbed through the conv channel before it (model/channels/
visualize.py), so its image is that conv channel's: the ascent runs once and is measured
at each layer, and the CPU seconds of a relu or pool row are those of the ascent it reuses.
`--set` changes one of the settings (model/channels/visualize.py VisSettings) for every
layer, e.g. `--set decay_power=1.5 --set jitter=0`; the default is the server's settings.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

import model
from model.channels import INDEXED_KINDS, VisSettings, build_index, visualize, weights_sha256
from model.channels.files import read_index
from model.channels.visualize import climbed_layer
from model.training.datasets import load_split
from model.weights import SHIPPED_DIR

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = {
    "mnist": ROOT.parent / "shared" / "datasets" / "mnist",
    "cifar10": ROOT.parent / "shared" / "datasets" / "cifar10-jpg.tar.gz",
    "cs231n": ROOT.parent / "shared" / "datasets" / "cifar10-jpg.tar.gz",
}


def top_values(net: model.Network, model_id: str, data: Path) -> dict[int, np.ndarray]:
    """Per indexed layer, (D, 9) top activations over the test split."""
    try:
        document = read_index(SHIPPED_DIR / f"{model_id}.channels")
        if document["weights_sha256"] == weights_sha256(net):
            print(f"top patches: the index of {document['dataset']['count']} images")
            return {
                layer["index"]: np.array([[e[3] for e in ch] for ch in layer["channels"]])
                for layer in document["layers"]
            }
        print("the index was made for other weights: building one here")
    except FileNotFoundError:
        print("no index: building one here")
    test = load_split(data, "test", net.classes, channels=net.input_shape[2])
    started = time.perf_counter()
    found = build_index(net, test.images)
    print(f"indexed {len(test)} images in {time.perf_counter() - started:.1f} s")
    return {layer.index: layer.values for layer in found.layers}


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
    args = parser.parse_args()
    net = model.load(args.model)
    tops = top_values(net, args.model, args.data or DEFAULT_DATA[args.model])
    settings = VisSettings(**dict(_setting(text) for text in args.set))
    ascents: dict[tuple[int, int], tuple[np.ndarray, float]] = {}
    changed = ", ".join(args.set) or "the server's"
    print(f"\n{args.model}, settings {settings.key()} ({changed}; {settings.steps} steps)\n")
    print(
        "| layer | channels measured | mean beats all top 9 | max neuron beats all top 9 "
        "| median mean / top 1 | CPU s per channel |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    totals = [0, 0]
    for i, layer in enumerate(net.layers):
        if layer.kind not in INDEXED_KINDS:
            continue
        depth = layer.output_shape[2]
        count = depth if args.all else min(args.per_layer, depth)
        channels = sorted({int(round(c)) for c in np.linspace(0, depth - 1, count)})
        beats_mean = beats_max = 0
        ratios, seconds = [], []
        for d in channels:
            key = (climbed_layer(net, i), d)
            if key not in ascents:
                cpu = time.process_time()
                image = visualize(net, i, d, settings).image
                ascents[key] = image, time.process_time() - cpu
            image, cpu_seconds = ascents[key]
            seconds.append(cpu_seconds)
            x = net.preprocess(image[None])
            for current in net.layers[: i + 1]:
                x = current.forward(x)
            activation = float(x[0, :, :, d].mean())  # what visualize() reports
            best_patch = float(tops[i][d].max())
            beats_mean += activation > best_patch
            beats_max += float(x[0, :, :, d].max()) > best_patch
            if best_patch > 0:
                ratios.append(activation / best_patch)
        n = len(channels)
        totals[0] += beats_mean
        totals[1] += n
        median = f"{statistics.median(ratios):.2f}" if ratios else "-"
        print(
            f"| {layer.name} | {n} of {depth} | {beats_mean / n:.0%} | {beats_max / n:.0%} | "
            f"{median} | {statistics.mean(seconds):.2f} |",
            flush=True,
        )
    print(f"\nall layers: the mean beats all top 9 for {totals[0]} of {totals[1]} channels")


if __name__ == "__main__":
    main()
