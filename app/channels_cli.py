"""`convscope index` and `convscope visualize`: the channel views, made ahead of time.

index: the top dataset patches of every channel, written beside the weights (or --out).
visualize: every channel's feature visualisation, into the same folder, where the server
looks before computing one. A run cut short resumes: channels already there are skipped.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tqdm import tqdm

from app.cli_help import HelpFormatter

# Steps 0, 16, 32, 64, 128 and 256 of the default ascent: a replay in 6 pictures, and a
# fifth of the bytes of all 33 frames (sizes in BENCHMARKS.md).
FRAMES_KEPT = 6


def add_index_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "index",
        help="find each channel's top dataset patches (for the page's channel view)",
        description="Run a model over a dataset's test split and keep, for every channel of "
        "every conv, relu and pool layer, the positions where it fires most, with the input "
        "patch under each one's receptive field. Writes <weights>.channels/: index.json "
        "(with the weights' sha256) and one sprite sheet PNG per layer.",
        epilog="""\
examples:
  convscope index --model cifar10 --data ../shared/datasets/cifar10-jpg.tar.gz
  convscope index --model mnist --data ../shared/datasets/mnist""",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--model", required=True, help="shipped model id: cifar10, mnist or cs231n")
    parser.add_argument("--data", required=True, help="dataset path (see convscope train)")
    parser.add_argument(
        "--weights", help="an .npz (with its .json card) instead of the shipped one"
    )
    parser.add_argument(
        "--out", help="folder to write (default: beside the weights, <id>.channels)"
    )
    parser.add_argument("--top", type=int, default=9, help="positions kept per channel (default 9)")
    parser.add_argument("--batch-size", type=int, default=50, help="images per batch (default 50)")
    parser.set_defaults(handler=index)


def _load(args):
    import model
    from model.weights import SHIPPED_DIR

    net = model.load(args.weights or args.model)
    folder = Path(args.weights).with_suffix("") if args.weights else SHIPPED_DIR / args.model
    out = Path(args.out) if args.out else folder.parent / f"{folder.name}.channels"
    return net, out


def index(args: argparse.Namespace) -> int:
    from model.channels import build_index, weights_sha256
    from model.channels.files import image_paths, write_index
    from model.training.datasets import load_split

    try:
        net, out = _load(args)
        test = load_split(args.data, "test", net.classes or None, channels=net.input_shape[2])
        if test.shape != net.input_shape:
            raise ValueError(f"the images are {test.shape}, the model reads {net.input_shape}")
        paths = image_paths(args.data, "test", test.format, len(test))
    except (FileNotFoundError, ValueError) as error:
        print(f"convscope index: {error}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    with tqdm(total=len(test), desc=f"indexing {args.model}", unit="img") as bar:
        found = build_index(
            net,
            test.images,
            k=args.top,
            batch_size=args.batch_size,
            progress=lambda done: bar.update(done - bar.n),
        )
    written = write_index(
        out,
        found,
        model=args.model,
        weights_sha256=weights_sha256(net),
        dataset={
            "source": Path(args.data).name,
            "sha256": test.sha256,
            "split": "test",
            "format": test.format,
        },
        paths=paths,
        labels=test.labels,
        classes=test.classes,
    )
    channels = sum(layer.values.shape[0] for layer in found.layers)
    print(
        f"{channels} channels of {len(found.layers)} layers over {len(test)} images in "
        f"{time.perf_counter() - started:.1f} s: {written}"
    )
    return 0


def add_visualize_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "visualize",
        help="make every channel's feature visualisation ahead of time",
        description="Gradient ascent on the input for every channel of every conv, relu and "
        "pool layer (Fourier parameterisation, decorrelated colours, jitter, scale and "
        "rotation, Adam), written where the server looks first, so no page waits for one.",
        epilog="""\
examples:
  convscope visualize --model cifar10
  convscope visualize --model mnist --layers 0,3 --steps 128""",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--model", required=True, help="shipped model id: cifar10, mnist or cs231n")
    parser.add_argument(
        "--weights", help="an .npz (with its .json card) instead of the shipped one"
    )
    parser.add_argument(
        "--out", help="folder to write (default: beside the weights, <id>.channels)"
    )
    parser.add_argument("--layers", help="comma-separated layer indices (default: all of them)")
    parser.add_argument("--steps", type=int, help="Adam steps (default: the server's)")
    parser.add_argument("--seed", type=int, help="seed (default: the server's)")
    parser.add_argument(
        "--frames",
        type=int,
        default=FRAMES_KEPT,
        help="frames of each ascent kept for the page's replay: the first, the last and "
        f"those at halving steps before it (default {FRAMES_KEPT}; 0 keeps all)",
    )
    parser.set_defaults(handler=visualize)


def visualize(args: argparse.Namespace) -> int:
    from app.channels import ChannelViews
    from app.registry import ServedModel
    from model.channels import INDEXED_KINDS, VisSettings

    try:
        net, out = _load(args)
        wanted = [int(i) for i in args.layers.split(",")] if args.layers else None
    except (FileNotFoundError, ValueError) as error:
        print(f"convscope visualize: {error}", file=sys.stderr)
        return 2
    if args.frames == 1 or args.frames < 0:
        print("convscope visualize: --frames is 0 (all) or at least 2", file=sys.stderr)
        return 2
    options = {k: v for k, v in (("steps", args.steps), ("seed", args.seed)) if v is not None}
    settings = VisSettings(**options)
    served = ServedModel(args.model, net, trained=True, digits=net.input_style == "digits")
    views = ChannelViews(out.parent, out.parent)
    root = out / "visualizations"
    layers = [
        i
        for i, layer in enumerate(net.layers)
        if layer.kind in INDEXED_KINDS and (wanted is None or i in wanted)
    ]
    jobs = [(i, d) for i in layers for d in range(net.layers[i].output_shape[2])]
    started, made = time.perf_counter(), 0
    for i, d in tqdm(jobs, desc=f"visualising {args.model}", unit="channel"):
        if views.find_visualization(served, i, d, settings, roots=[root]) is None:
            views.make_visualization(served, i, d, settings, root=root, keep_frames=args.frames)
            made += 1
    print(f"{made} of {len(jobs)} channels made in {time.perf_counter() - started:.1f} s: {root}")
    return 0
