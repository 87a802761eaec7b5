"""The HTTP-level bounds of `convscope serve`: its options, and what they give uvicorn.

- httptools parses requests, through app/bounded_http.py, which answers 431 past
  CONVSCOPE_MAX_HEADER_BYTES (16 KiB) of request head or 100 headers (httptools itself
  has no limit: a never-finished 25 MB header is held whole). `--http h11` uses h11,
  which bounds the head itself but is several times slower (BENCHMARKS.md).
- The keep-alive timeout is above the 5 s after which common clients (httpx, Node)
  drop an idle connection, so a client never sends on a connection the server is closing.
- --limit-concurrency is the app's limit (app/http_guard.py answers past it with 503 and
  Retry-After); uvicorn's own, which also counts idle connections and answers a bare 503,
  is set to twice that, as the bound on open connections.

- --ssl-keyfile and --ssl-certfile (both or neither) serve https, as uvicorn's options of
  the same names: browsers let a page use the camera only on https or on localhost, so
  students' phones need https to photograph.

The options are handed to every worker process through CONVSCOPE_* variables, which the
app's Settings read.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from app.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout-keep-alive",
        type=int,
        metavar="SECONDS",
        help="close idle keep-alive connections after this long "
        "(default: $CONVSCOPE_TIMEOUT_KEEP_ALIVE or 20)",
    )
    parser.add_argument(
        "--limit-concurrency",
        type=int,
        metavar="N",
        help="requests in progress per worker before 503 + Retry-After "
        "(default: $CONVSCOPE_LIMIT_CONCURRENCY or 1024)",
    )
    parser.add_argument(
        "--http",
        choices=("httptools", "h11"),
        default="httptools",
        help="HTTP parser; both bound request headers (default: httptools, the faster)",
    )
    parser.add_argument(
        "--ssl-keyfile",
        metavar="FILE",
        help="serve https with this private key (PEM), together with --ssl-certfile: "
        "cameras on other devices work only over https",
    )
    parser.add_argument(
        "--ssl-certfile", metavar="FILE", help="the certificate (PEM) for --ssl-keyfile"
    )


class OptionError(ValueError):
    """Options that cannot work together; the message says why."""


def _ssl_options(args: argparse.Namespace) -> dict[str, str]:
    key, cert = args.ssl_keyfile, args.ssl_certfile
    if not key and not cert:
        return {}
    if not (key and cert):
        raise OptionError("https needs both --ssl-keyfile and --ssl-certfile.")
    for option, path in (("--ssl-keyfile", key), ("--ssl-certfile", cert)):
        if not Path(path).is_file():
            raise OptionError(f"{option} {path}: there is no such file.")
    return {"ssl_keyfile": key, "ssl_certfile": cert}


def uvicorn_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for uvicorn.run; sets the CONVSCOPE_* variables the workers read.
    Raises OptionError (a sentence) for options that cannot work together."""
    ssl = _ssl_options(args)
    if args.timeout_keep_alive is not None:
        os.environ["CONVSCOPE_TIMEOUT_KEEP_ALIVE"] = str(args.timeout_keep_alive)
    if args.limit_concurrency is not None:
        os.environ["CONVSCOPE_LIMIT_CONCURRENCY"] = str(args.limit_concurrency)
    settings = Settings()
    options: dict[str, Any] = {
        "http": "app.bounded_http:BoundedHttpToolsProtocol" if args.http == "httptools" else "h11",
        "timeout_keep_alive": settings.timeout_keep_alive,
        "limit_concurrency": 2 * settings.limit_concurrency,
        **ssl,
    }
    if args.http == "h11":
        options["h11_max_incomplete_event_size"] = settings.max_header_bytes
    return options
