"""`convscope explain IMAGE --model ID --method M [--target CLASS] --out FILE.png`.

The same preprocessing as `convscope forward` and the server (app/imaging.py), the same
methods (model/attributions.py) and the same picture as GET
/api/runs/{id}/attributions/{method}.png (app/heatmap.py), without a server. It prints the
class explained, its probability and, for Integrated Gradients, the completeness gap.

Imports beyond argparse happen in the handler, so `convscope --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from app.cli_help import HelpFormatter

# model.attributions.METHODS, named here so that --help need not import NumPy.
METHODS = ("saliency", "smoothgrad", "integrated-gradients", "gradcam", "occlusion")

EPILOG = """\
methods:
  saliency              how much each pixel's change would change the score (gradient)
  smoothgrad            the same, averaged over noisy copies: less speckle
  integrated-gradients  each pixel's share of the score, from a grey image to this one
  gradcam               where in a layer's map the evidence for the class lies
  occlusion             how much the probability drops when a grey square hides the pixels

examples:
  convscope explain cat.jpg --model cifar10 --method gradcam --out why.png
  convscope explain cat.jpg --model cifar10 --method integrated-gradients --steps 128 \\
      --target dog --out dog.png
  convscope explain seven.png --model mnist --method occlusion --patch 6 --out seven-why.png"""


def add_explain_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="why a model chose a class: a heat map over one image",
        description="Explain one class's score for one image with an attribution method, "
        "and write the map over the network's input as a PNG heat map.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("image", help="JPEG, PNG, GIF, WebP, BMP or TIFF file")
    parser.add_argument("--model", required=True, help="shipped model id: cifar10, mnist or cs231n")
    parser.add_argument("--method", required=True, choices=METHODS, help="attribution method")
    parser.add_argument("--target", help="class name or index to explain (default: the top class)")
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--steps", type=int, default=32, help="integrated-gradients (32)")
    parser.add_argument("--samples", type=int, default=25, help="smoothgrad: copies (25)")
    parser.add_argument("--noise", type=float, default=0.15, help="smoothgrad: share (0.15)")
    parser.add_argument("--seed", type=int, default=0, help="smoothgrad: random seed (0)")
    parser.add_argument(
        "--layer", type=int, help="gradcam: layer index (default: the last one larger than 1x1)"
    )
    parser.add_argument("--patch", type=int, default=8, help="occlusion: square side (8)")
    parser.add_argument("--stride", type=int, default=4, help="occlusion: step (4)")
    parser.add_argument("--alpha", type=float, default=0.7, help="heat map opacity (0.7)")
    parser.add_argument("--upscale", type=int, help="pixels per input pixel (default: ~256 px)")
    parser.set_defaults(handler=explain)


def _target(text: str | None, classes: list[str], top: int) -> int:
    if text is None:
        return top
    if text in classes:
        return classes.index(text)
    try:
        return int(text)
    except ValueError:
        raise ValueError(
            f"there is no class {text!r}; the classes are {', '.join(classes)}"
        ) from None


def explain(args: argparse.Namespace) -> int:
    import numpy as np

    from app import heatmap, imaging
    from app.registry import load_model
    from app.settings import Settings
    from model import attributions

    max_pixels = Settings().max_pixels
    try:
        served = load_model(args.model)
        net = served.network
        imaging.configure_pillow(max_pixels)
        pixels = imaging.prepare(
            Path(args.image).read_bytes(),
            net.input_shape,
            digits=served.digits,
            max_pixels=max_pixels,
        )
        x = net.preprocess(pixels[None])[0]
        top = int(np.argmax(net.predict(x[None])[0]))
        target = _target(args.target, net.classes, top)
        params = {name: getattr(args, name) for name in attributions.PARAMETERS[args.method]}
        result = attributions.explain(net, x, args.method, target, **params)
        png = heatmap.overlay_png(pixels, result.values, args.alpha, args.upscale)
        Path(args.out).write_bytes(png)
    except (FileNotFoundError, IsADirectoryError, ValueError) as error:
        # ValueError covers AttributionError, RenderError and an unknown model.
        print(f"convscope explain: {error}", file=sys.stderr)
        return 2
    except imaging.ImageError as error:
        print(f"convscope explain: {args.image}: {error.detail}", file=sys.stderr)
        return 2
    name = net.classes[target] if net.classes else str(target)
    untrained = "" if served.trained else " (untrained weights)"
    print(f"{args.model}{untrained}: {name} (class {target}), probability {result.probability:.1%}")
    if "delta" in result.extras:
        change = result.score - result.extras["baseline_score"]
        share = abs(result.extras["delta"]) / abs(change) if change else float("nan")
        print(
            f"completeness gap: {result.extras['delta']:+.4f} "
            f"({share:.2%} of score - baseline score = {change:.4f}; more --steps shrink it)"
        )
    if "layer_name" in result.extras:
        print(f"layer: {result.extras['layer']} ({result.extras['layer_name']})")
    lo, hi = heatmap.value_range(result.values)
    colours = "coolwarm" if lo < 0 else "viridis"
    print(
        f"{args.method} map {result.values.shape[0]}x{result.values.shape[1]}, "
        f"{colours} from {lo:.4g} to {hi:.4g}, written to {args.out}"
    )
    return 0
