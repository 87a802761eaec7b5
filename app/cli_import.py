"""`convscope import MODEL.onnx --id ID ...`: bring your own network into ConvScope.

Reads the graph (model/onnx_import.py), builds ConvScope's layers, checks them with a
forward pass on a random input (and, with --validate, against ONNX Runtime when it is
installed), and only then writes the weights and the card into the models directory
(app/models_dir.py). Any refusal is one sentence on stderr and exit status 2; nothing is
written.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any

from app.cli_help import HelpFormatter

EPILOG = """\
examples:
  convscope import net.onnx --id mynet --classes cat,dog
  convscope import digits.onnx --id digits --input-style digits --mean 33.3 --std 78.6
  convscope import vgg.onnx --id vgg --classes-file classes.txt \\
      --mean 123.7 116.3 103.5 --std 58.4 57.1 57.4 --fold-batchnorm --validate

Export from PyTorch: torch.onnx.export(net.eval(), torch.randn(1, 3, 32, 32), "net.onnx")
From Keras:          python -m tf2onnx.convert --saved-model DIR --output net.onnx
                     (with --inputs-as-nchw INPUT, so the input is NCHW)
The models directory is $CONVSCOPE_MODELS_DIR (default ~/.local/share/convscope/models);
`convscope serve` serves every model in it beside the shipped ones."""

# The largest difference to ONNX Runtime's scores that --validate accepts, relative to the
# largest score: float32 sums in another order differ by far less.
VALIDATE_TOLERANCE = 1e-3


def add_import_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "import",
        help="import an ONNX network (from PyTorch, Keras, ...) to view it",
        description="Import an ONNX image classifier into ConvScope's NumPy layers and write "
        "it into the models directory, where `convscope serve` finds it. The network sees "
        "(pixel - mean) / std, pixels on the 0-255 scale.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("onnx", help="the .onnx file")
    parser.add_argument("--id", required=True, help="the model's id on the page and in the API")
    classes = parser.add_mutually_exclusive_group()
    classes.add_argument("--classes", help="class names, comma-separated, in output order")
    classes.add_argument("--classes-file", help="a text file with one class name per line")
    parser.add_argument(
        "--input-style",
        choices=["photo", "digits"],
        help="how uploads are prepared: photo (crop and resize) or digits (MNIST-like: grey, "
        "light on dark, centred); default digits for 1 channel, photo for 3",
    )
    parser.add_argument(
        "--mean", type=float, nargs="+", help="one per input channel, 0-255 scale (default 0)"
    )
    parser.add_argument(
        "--std", type=float, nargs="+", help="one per input channel, 0-255 scale (default 255)"
    )
    parser.add_argument(
        "--fold-batchnorm",
        action="store_true",
        help="fold each BatchNormalization into the conv or fc before it (default: own layer)",
    )
    parser.add_argument(
        "--validate",
        action="store_true",
        help="also run the graph in ONNX Runtime, if installed, and compare the scores",
    )
    parser.add_argument("--models-dir", help="default: $CONVSCOPE_MODELS_DIR")
    parser.set_defaults(handler=run_import)


def _fail(message: str) -> int:
    print(f"convscope import: {message}", file=sys.stderr)
    return 2


def _classes(args: argparse.Namespace, count: int) -> list[str]:
    if args.classes_file:
        names = [line.strip() for line in Path(args.classes_file).read_text().splitlines()]
        names = [name for name in names if name]
    elif args.classes:
        names = [name.strip() for name in args.classes.split(",")]
    else:
        return [str(i) for i in range(count)]
    if len(names) != count:
        raise ValueError(f"the network gives {count} scores, but {len(names)} class names came")
    if len(set(names)) != len(names) or not all(names):
        raise ValueError("class names must be distinct and not empty")
    return names


def _normalization(args: argparse.Namespace, channels: int) -> dict[str, list[float]]:
    mean = args.mean if args.mean is not None else [0.0] * channels
    std = args.std if args.std is not None else [255.0] * channels
    for name, values in (("--mean", mean), ("--std", std)):
        if len(values) != channels:
            raise ValueError(
                f"{name} needs {channels} number{'s' if channels > 1 else ''} (one per input "
                f"channel), got {len(values)}"
            )
    if min(std) <= 0:
        raise ValueError("--std must be positive")
    return {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}


def run_import(args: argparse.Namespace) -> int:
    import numpy as np

    from app import models_dir
    from app.settings import Settings
    from model.onnx_import import (
        ImportRefused,
        check_forward,
        convert,
        onnxruntime_scores,
        random_input,
        read_onnx,
    )

    source = Path(args.onnx)
    directory = Path(args.models_dir) if args.models_dir else Settings().models_dir
    try:
        models_dir.check_id(args.id)
        data = source.read_bytes()
        try:
            imported = convert(read_onnx(data, source.name), fold_batchnorm=args.fold_batchnorm)
        except ImportRefused:
            raise
        except Exception as error:  # a malformed graph the walk did not foresee
            raise ImportRefused(
                f"{source.name}: the graph could not be read ({type(error).__name__}: {error})."
            ) from None
        h, w, c = imported.input_shape
        classes = _classes(args, imported.output_depth)
        normalization = _normalization(args, c)
        style = args.input_style or ("digits" if c == 1 else "photo")
        net = imported.network(
            name=args.id,
            classes=classes,
            normalization=normalization,
            input_style=style,
            description=f"Imported from {source.name}"
            + (f" ({imported.producer})" if imported.producer else "")
            + ".",
        )
        x = random_input(net)
        scores = check_forward(net, x)
        validation = None
        if args.validate:
            reference = onnxruntime_scores(data, x)
            if reference is None:
                print("--validate: onnxruntime is not installed (pip install onnxruntime); skipped")
            else:
                difference = float(np.abs(scores - reference).max())
                limit = VALIDATE_TOLERANCE * max(1.0, float(np.abs(reference).max()))
                print(f"--validate: largest difference to ONNX Runtime {difference:.3g}")
                if not difference <= limit:
                    raise ImportRefused(
                        f"ConvScope's scores differ from ONNX Runtime's by {difference:.3g} "
                        f"(more than {limit:.3g}) on a random input; not imported."
                    )
                validation = {"onnxruntime_max_difference": difference, "date": models_dir.now()}
        replaced = (directory / f"{args.id}.json").exists()
        card = {
            "source": {
                "file": source.name,
                "sha256": hashlib.sha256(data).hexdigest(),
                "bytes": len(data),
                "producer": imported.producer,
                "opset": imported.opset,
                "imported": models_dir.now(),
                "fold_batchnorm": args.fold_batchnorm,
            },
            "input_size": [h, w, c],
            "classes": classes,
            "test_accuracy": None,
            "accuracy": "not measured (convscope eval --model ID --data PATH records it)",
            "validation": validation,
            "onnx_nodes": imported.nodes,
            "dropped_nodes": imported.dropped,
        }
        path = models_dir.write_model(directory, args.id, net, card)
    except (ImportRefused, ValueError, OSError) as error:
        return _fail(str(error).rstrip("."))
    kinds = " ".join(layer.kind for layer in net.layers)
    print(
        f"{'replaced' if replaced else 'imported'} {args.id}: {len(net.layers)} layers ({kinds}), "
        f"{net.param_count:,} parameters, input {h}x{w}x{c}, {len(classes)} classes -> {path}"
    )
    return 0
