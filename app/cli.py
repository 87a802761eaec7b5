"""The `convscope` command (also `python -m app`).

Each subcommand is one `add_<name>_parser(subparsers)` function that adds its parser and
sets `handler`, a function taking the parsed arguments and returning the exit status.
To add a subcommand, write that pair and list the function in SUBCOMMANDS. Handlers import
what they need themselves, so `convscope --help` stays fast.
"""

import argparse
import sys
from collections.abc import Callable, Sequence

from pydantic import ValidationError

from app import __version__, serve_options
from app.channels_cli import add_index_parser, add_visualize_parser
from app.cli_help import HelpFormatter
from app.cli_import import add_import_parser
from app.explain import add_explain_parser
from app.settings import Settings

Subparsers = argparse._SubParsersAction  # argparse has no public name for it

DESCRIPTION = """\
ConvScope: see inside a convolutional network. Give it an image and watch every layer's
activation volume arrive in the browser."""

EPILOG = """\
examples:
  convscope serve                  open http://127.0.0.1:8000
  convscope serve --help           the options of one subcommand

Settings also come from CONVSCOPE_* environment variables (see README.md)."""


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def add_serve_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the web server",
        description="Run the web server: the viewer page, the HTTP API and its docs at /docs.",
        epilog="""\
examples:
  convscope serve                              http://127.0.0.1:8000, this machine only
  convscope serve --host 0.0.0.0 --port 8080   reachable from the classroom network
  convscope serve --workers 4                  four processes, for many students at once
  convscope serve --host 0.0.0.0 --ssl-keyfile key.pem --ssl-certfile cert.pem
                                               https: cameras on students' phones work""",
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--host", help="address to listen on (default: $CONVSCOPE_HOST or 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, help="port to listen on (default: $CONVSCOPE_PORT or 8000)"
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="worker processes, each with its own copy of the models (default: 1)",
    )
    serve_options.add_arguments(parser)
    parser.set_defaults(handler=serve)


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    try:
        options = serve_options.uvicorn_options(args)
    except serve_options.OptionError as error:
        print(f"convscope serve: {error}", file=sys.stderr)
        return 2
    settings = Settings()
    # An import string and a factory, so that each worker process builds its own app.
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=args.workers,
        **options,
    )
    return 0


def add_train_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model on a dataset (NumPy, resumable)",
        description="Train one of the shipped architectures with the project's NumPy trainer. "
        "The defaults are the model's reference recipe (docs/architecture.md); a checkpoint "
        "is written after every epoch, and the weights plus a JSON model card at the end.",
        epilog="""\
examples:
  convscope train --model cifar10 --data ../shared/datasets/cifar10-jpg.tar.gz
  convscope train --model mnist --data ../shared/datasets/mnist
  convscope train --model cs231n --data ../shared/datasets/cifar10-jpg.tar.gz
  convscope train --model cifar10 --data DATA --resume     continue after an interruption""",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--model", required=True, help="architecture id: cifar10, mnist or cs231n")
    parser.add_argument(
        "--data",
        required=True,
        help="dataset: an image folder (dir or .tar.gz), cifar-10-batches-py, or MNIST IDX files",
    )
    parser.add_argument("--epochs", type=positive_int, help="epochs (default: the recipe's)")
    parser.add_argument("--batch-size", type=positive_int, help="images per step (default 128)")
    parser.add_argument("--lr", type=float, help="peak learning rate of the one-cycle schedule")
    parser.add_argument(
        "--label-smoothing", type=float, help="label smoothing of the loss (default: the recipe's)"
    )
    parser.add_argument(
        "--seed", type=int, help="random seed; the same seed gives the same weights"
    )
    parser.add_argument(
        "--out", help="weights path without suffix (default: model/shipped/<model>)"
    )
    parser.add_argument(
        "--checkpoint", help="checkpoint file (default: checkpoints/<model>.ckpt.npz)"
    )
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    parser.add_argument(
        "--workers",
        type=positive_int,
        help="processes for the training step, threads for evaluation; one per core by default",
    )
    parser.set_defaults(handler=train)


def train(args: argparse.Namespace) -> int:
    from model.training.malloc import keep_freed_buffers
    from model.training.train import TrainConfig
    from model.training.train import train as run_training

    keep_freed_buffers()  # this process only trains: reuse its big buffers (BENCHMARKS.md)
    config = TrainConfig.for_model(
        args.model,
        args.data,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        label_smoothing=args.label_smoothing,
        seed=args.seed,
        out=args.out,
        checkpoint=args.checkpoint,
        workers=args.workers,
    )
    try:
        run_training(config, resume=args.resume)
    except (FileNotFoundError, ValueError) as error:
        print(f"convscope train: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: resume with the same command plus --resume", file=sys.stderr)
        return 130
    return 0


def add_eval_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="accuracy of a model on a dataset's test split",
        description="Accuracy on the test split of a dataset, with a per-class table and a "
        "confusion matrix (or one JSON object with --json). Only test/ needs to exist.",
        epilog="""\
examples:
  convscope eval --model cifar10 --data ../shared/datasets/cifar10-jpg.tar.gz
  convscope eval --model mnist --data ../shared/datasets/mnist --json""",
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--model", required=True, help="model id: cifar10, mnist, cs231n or an imported one"
    )
    parser.add_argument("--data", required=True, help="dataset path (see convscope train)")
    parser.add_argument(
        "--weights", help="an .npz (with its .json card) instead of the shipped one"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=evaluate)


def evaluate(args: argparse.Namespace) -> int:
    import json

    import model
    from app.models_dir import find, record_accuracy
    from model.training.datasets import load_split
    from model.training.evaluate import evaluate as run_evaluation

    try:
        imported = None if args.weights else find(args.model)
        net = imported.network if imported else model.load(args.weights or args.model)
        size = net.input_shape[:2] if imported else None  # an imported model's own size
        test = load_split(
            args.data,
            "test",
            net.classes or None,
            channels=net.input_shape[2],
            size=size,
            progress=False,
        )
        result = run_evaluation(net, test.images, test.labels)
    except (FileNotFoundError, ValueError) as error:
        print(f"convscope eval: {error}", file=sys.stderr)
        return 2
    if imported:  # the card's "accuracy not measured" becomes this
        record_accuracy(args.model, result.as_dict(), args.data)
    if args.json:
        print(json.dumps({"model": args.model, **result.as_dict()}))
    else:
        print(result.table())
    return 0


def add_forward_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "forward",
        help="push one image through a model; write every layer as PNG",
        description="Push one image through a model, as the server does, and write the "
        "preprocessed input, one PNG per layer (all depth slices, labelled) and summary.json "
        "(each layer's shape and statistics, the class probabilities) to a folder.",
        epilog="""\
examples:
  convscope forward cat.jpg --model cifar10 --out layers/
  convscope forward digit.png --model mnist --out digit/ --colormap gray""",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("image", help="JPEG, PNG, GIF, WebP, BMP or TIFF file")
    parser.add_argument("--model", required=True, help="shipped model id: cifar10, mnist or cs231n")
    parser.add_argument("--out", required=True, help="folder to write (made if missing)")
    parser.add_argument(
        "--colormap",
        choices=["gray", "viridis", "coolwarm"],
        help="default: coolwarm for signed layers, viridis otherwise",
    )
    parser.set_defaults(handler=forward)


def forward(args: argparse.Namespace) -> int:
    from pathlib import Path

    from app.export import forward_to_directory
    from app.imaging import ImageError

    try:
        summary = forward_to_directory(
            Path(args.image),
            args.model,
            Path(args.out),
            max_pixels=Settings().max_pixels,
            colormap=args.colormap,
        )
    except (FileNotFoundError, IsADirectoryError, ValueError) as error:
        print(f"convscope forward: {error}", file=sys.stderr)
        return 2
    except ImageError as error:
        print(f"convscope forward: {args.image}: {error.detail}", file=sys.stderr)
        return 2
    best = ", ".join(f"{t['class']} {t['probability']:.1%}" for t in summary["top"][:3])
    untrained = "" if summary["trained"] else " (untrained weights)"
    print(f"{len(summary['layers'])} layers written to {args.out}; {args.model}{untrained}: {best}")
    return 0


SUBCOMMANDS: list[Callable[[Subparsers], None]] = [
    add_serve_parser,
    add_train_parser,
    add_eval_parser,
    add_forward_parser,
    add_explain_parser,
    add_import_parser,
    add_index_parser,
    add_visualize_parser,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convscope",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for add_parser in SUBCOMMANDS:
        add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ValidationError as error:
        # A bad CONVSCOPE_* variable: say which, without a traceback.
        print(f"convscope: invalid setting\n{error}")
        return 2
