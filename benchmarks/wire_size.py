"""Bytes on the wire for whole runs of real photos and digits, in each way a client can ask.

Starts `convscope serve` (cifar10 and mnist) on a free loopback port and uploads samples from
static/samples/, reading each stream as it travelled (compressed when it was), checking that
it decodes to the run, every layer and the scores:

    python benchmarks/wire_size.py [--samples 5]

Columns: plain NDJSON (no Accept-Encoding), gzip of the base64 lines (Chromium's
Accept-Encoding, `encoding=uint8`), gzip of the split lines (`encoding=uint8-split`), and
what the page receives (Chromium's Accept-Encoding, `encoding=uint8-predicted`).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import zlib
from pathlib import Path

import httpx
from local_server import free_port, start_server

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "gzip, deflate, br, zstd"
WAYS = [
    ("plain", "identity", "uint8"),
    ("gzip", CHROMIUM, "uint8"),
    ("split", CHROMIUM, "uint8-split"),
    ("page (predicted)", CHROMIUM, "uint8-predicted"),
]


def run_bytes(base: str, model_id: str, image: bytes, accept: str, encoding: str) -> int:
    url = f"{base}/api/models/{model_id}/forward?encoding={encoding}"
    with httpx.Client(headers={"Accept-Encoding": accept}, timeout=60) as client:
        with client.stream("POST", url, files={"image": ("sample", image)}) as response:
            raw = b"".join(response.iter_raw())
            gzipped = response.headers.get("content-encoding") == "gzip"
    body = zlib.decompress(raw, 16 + 15) if gzipped else raw
    lines = [json.loads(line) for line in body.splitlines()]
    assert lines[0]["type"] == "run" and lines[-1]["type"] == "scores", lines[-1]
    # A predicted stream keeps the split encoding for the lines nothing predicts.
    assert {line["encoding"] for line in lines[1:-1]} <= {encoding, "uint8-split"}
    return len(raw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=5, help="per model, spread over classes")
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="convscope-wire-") as runs_dir:
        env = {"CONVSCOPE_MODELS": "cifar10,mnist", "CONVSCOPE_RUNS_DIR": runs_dir}
        server = start_server(port, 1, env)
        try:
            print("| model | sample | " + " | ".join(name for name, _, _ in WAYS) + " |")
            print("| --- | --- |" + " --- |" * len(WAYS))
            for model_id in ("cifar10", "mnist"):
                files = sorted((REPO / "static" / "samples" / model_id).glob("*.*"))
                files = [f for f in files if f.suffix in (".jpg", ".png")]
                step = max(1, len(files) // args.samples)
                for path in files[::step][: args.samples]:
                    sizes = [
                        run_bytes(f"http://127.0.0.1:{port}", model_id, path.read_bytes(), a, e)
                        for _, a, e in WAYS
                    ]
                    cells = " | ".join(f"{size / 1000:.1f} KB" for size in sizes)
                    print(f"| {model_id} | {path.name} | {cells} |")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
