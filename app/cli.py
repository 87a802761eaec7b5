"""The `convscope` command (also `python -m app`).

Each subcommand is one `add_<name>_parser(subparsers)` function that adds its parser and
sets `handler`, a function taking the parsed arguments and returning the exit status.
To add a subcommand, write that pair and list the function in SUBCOMMANDS. Handlers import
what they need themselves, so `convscope --help` stays fast.
"""

import argparse
from collections.abc import Callable, Sequence

from pydantic import ValidationError

from app import __version__
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
  convscope serve --workers 4                  four processes, for many students at once""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    parser.set_defaults(handler=serve)


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = Settings()
    # An import string and a factory, so that each worker process builds its own app.
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=args.workers,
    )
    return 0


SUBCOMMANDS: list[Callable[[Subparsers], None]] = [add_serve_parser]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convscope",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
