"""Take the README's screenshot (docs/screenshot.png): the viewer at 1280x720 on a CIFAR-10
sample, one layer selected, a neuron hovered so its value and receptive field show.

    python scripts/take_screenshot.py [--url http://127.0.0.1:8000] [--out docs/screenshot.png]

Starts its own server unless --url is given; needs Chromium (apt-get install -y chromium).
"""

import argparse
import sys
from pathlib import Path
from urllib.parse import parse_qs

import httpx
from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
from local_server import free_port, start_server  # noqa: E402

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def layer_shape(url: str, view: str) -> list[int]:
    """(H, W, D) of the layer a viewer URL's query string selects."""
    query = parse_qs(view.lstrip("?"))
    models = httpx.get(f"{url}/api/models").json()["models"]
    chosen = next(m for m in models if m["id"] == query["model"][0])
    return chosen["layers"][int(query["layer"][0])]["shape"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server (default: start one)")
    parser.add_argument("--out", default=str(REPO / "docs" / "screenshot.png"))
    parser.add_argument(
        "--view", default="?model=cifar10&sample=cifar10-automobile-0001&layer=3&slice=12"
    )
    parser.add_argument("--cell", default="7,8", help="row,col of the neuron to hover")
    args = parser.parse_args()

    server = None
    url = args.url
    if not url:
        port = free_port()
        server = start_server(port)
        url = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
            )
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.goto(url + "/" + args.view)
            page.wait_for_selector("#score-bars .score.top", timeout=60_000)
            page.wait_for_selector("#slice-canvas", state="visible")
            row, col = (int(v) for v in args.cell.split(","))
            box = page.locator("#slice-canvas").bounding_box()
            height, width, _ = layer_shape(url, args.view)
            cell = min(box["width"] / width, box["height"] / height)
            page.mouse.move(box["x"] + (col + 0.5) * cell, box["y"] + (row + 0.5) * cell)
            page.wait_for_selector("#hover-value[data-value]", timeout=10_000)
            page.screenshot(path=args.out)
            browser.close()
        print(f"wrote {args.out}")
    finally:
        if server:
            server.terminate()


if __name__ == "__main__":
    main()
