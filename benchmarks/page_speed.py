"""How fast the viewer shows a run: headless Chromium against a real server on loopback.

For each repeat it chooses a file in the page's file picker and reads the page's own
Performance API marks: from "convscope:file-chosen" (the change event) to
"convscope:first-layer-drawn" and "convscope:last-layer-drawn" (the box drawn on screen, in
the animation frame after its layer arrived). Prints the median, the best and the 90th
percentile of both, after one warm-up.

    python benchmarks/page_speed.py [--model cifar10] [--repeats 20] [--image FILE]

Needs the system Chromium (apt-get install -y chromium) and the test extras (Playwright).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
from local_server import free_port, start_server
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_IMAGES = {
    "cifar10": ROOT / "static" / "samples" / "cifar10" / "cat-0000.jpg",
    "mnist": ROOT / "static" / "samples" / "mnist" / "7-0000.png",
}
READ_MARKS = """() => {
    const at = (name) => performance.getEntriesByName(name, 'mark').at(-1)?.startTime;
    return {chosen: at('convscope:file-chosen'), first: at('convscope:first-layer-drawn'),
            last: at('convscope:last-layer-drawn')};
}"""


def summary(name: str, values: list[float]) -> str:
    v = np.asarray(values)
    return (
        f"{name:<26} median {np.median(v):7.1f} ms   best {v.min():7.1f} ms   "
        f"p90 {np.percentile(v, 90):7.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="cifar10")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--image", type=Path, help="image to upload (default: a sample)")
    args = parser.parse_args()
    image = args.image or DEFAULT_IMAGES[args.model]
    chromium = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
    if not chromium:
        raise SystemExit("install Chromium: apt-get install -y chromium")

    port = free_port()
    server = start_server(port)
    first, last = [], []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium)
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.goto(f"http://127.0.0.1:{port}/?model={args.model}")
            page.wait_for_selector("#layer-row .layer-box")
            for repeat in range(args.repeats + 1):
                page.evaluate("performance.clearMarks()")
                page.set_input_files("#file-input", str(image))
                page.wait_for_function(
                    "() => performance.getEntriesByName('convscope:last-layer-drawn').length > 0",
                    timeout=60_000,
                )
                marks = page.evaluate(READ_MARKS)
                page.wait_for_selector('body[data-run-state="done"]')
                if repeat:  # the first is a warm-up
                    first.append(marks["first"] - marks["chosen"])
                    last.append(marks["last"] - marks["chosen"])
            browser.close()
    finally:
        server.terminate()
        server.wait()

    print(f"viewer page speed: {args.model}, {image.name}, {args.repeats} runs, headless Chromium")
    print(summary("file -> first layer drawn", first))
    print(summary("file -> last layer drawn", last))


if __name__ == "__main__":
    main()
