"""How fast the viewer shows a run: headless Chromium against a real server on loopback.

For each repeat it chooses a file in the page's file picker and reads the page's own
Performance API marks: from "convscope:file-chosen" (the change event) to
"convscope:first-layer-drawn" and "convscope:last-layer-drawn" (the box drawn on screen, in
the animation frame after its layer arrived). Prints the median, the best and the 90th
percentile of both, after one warm-up, and the bytes each run cost the page: every request
made from choosing the file until the network is quiet again after the run (the upload, the
stream, what the run's views fetch), headers included; an answer from the browser's cache
counts nothing.

    python benchmarks/page_speed.py [--model cifar10] [--repeats 20] [--image FILE]
                                    [--throttle classroom]

--throttle classroom emulates a classroom's Wi-Fi with Chromium's DevTools network
emulation (Network.emulateNetworkConditions): 150 ms latency, 1.6 Mbit/s down, 750 kbit/s
up; the page's stream worker is throttled with it. The photo of issue 17 is chelsea.png
(451x300, 240 KB), which scikit-image ships: `pip download scikit-image --no-deps`, then
`unzip scikit_image-*.whl skimage/data/chelsea.png`.

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
    const sent = performance.getEntriesByName('convscope:image-sent', 'mark').at(-1);
    return {chosen: at('convscope:file-chosen'), first: at('convscope:first-layer-drawn'),
            last: at('convscope:last-layer-drawn'), sent: sent ? sent.detail.bytes : 0};
}"""
# Chromium's DevTools network emulation; throughputs in bytes per second.
THROTTLE = {
    "classroom": {"latency": 150, "downloadThroughput": 1.6e6 / 8, "uploadThroughput": 750e3 / 8},
}


def request_bytes(request) -> tuple[int, int]:
    """(down, up) bytes of a finished request, headers included; a cached answer is 0 down.
    The multipart body of an upload is not reported for a worker's request: the page's
    "convscope:image-sent" mark gives the image's bytes instead."""
    sizes = request.sizes()
    down = max(0, sizes["responseBodySize"]) + max(0, sizes["responseHeadersSize"])
    return down, max(0, sizes["requestBodySize"]) + max(0, sizes["requestHeadersSize"])


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
    parser.add_argument("--throttle", choices=sorted(THROTTLE), help="emulate a slow network")
    args = parser.parse_args()
    image = args.image or DEFAULT_IMAGES[args.model]
    chromium = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
    if not chromium:
        raise SystemExit("install Chromium: apt-get install -y chromium")

    port = free_port()
    server = start_server(port)
    first, last, down, up, streamed = [], [], [], [], []
    requests: list = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium)
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            if args.throttle:
                cdp = page.context.new_cdp_session(page)
                cdp.send("Network.enable")
                cdp.send(
                    "Network.emulateNetworkConditions",
                    {"offline": False, **THROTTLE[args.throttle]},
                )
            page.on("requestfinished", lambda request: requests.append(request))
            page.goto(f"http://127.0.0.1:{port}/?model={args.model}")
            page.wait_for_selector("#layer-row .layer-box")
            for repeat in range(args.repeats + 1):
                page.wait_for_load_state("networkidle")
                page.evaluate("performance.clearMarks()")
                requests.clear()
                page.set_input_files("#file-input", str(image))
                page.wait_for_function(
                    "() => performance.getEntriesByName('convscope:last-layer-drawn').length > 0",
                    timeout=120_000,
                )
                marks = page.evaluate(READ_MARKS)
                page.wait_for_selector('body[data-run-state="done"]')
                page.wait_for_load_state("networkidle")
                if repeat:  # the first is a warm-up
                    first.append(marks["first"] - marks["chosen"])
                    last.append(marks["last"] - marks["chosen"])
                    sizes = [request_bytes(r) for r in requests]
                    down.append(sum(d for d, _ in sizes))
                    up.append(sum(u for _, u in sizes) + marks["sent"])
                    pairs = zip(sizes, requests, strict=True)
                    streamed.append(sum(d for (d, _), r in pairs if "/forward" in r.url))
            browser.close()
    finally:
        server.terminate()
        server.wait()

    network = f", network {args.throttle}" if args.throttle else ", loopback"
    print(
        f"viewer page speed: {args.model}, {image.name} ({image.stat().st_size / 1e3:.0f} KB),"
        f" {args.repeats} runs, headless Chromium{network}"
    )
    print(summary("file -> first layer drawn", first))
    print(summary("file -> last layer drawn", last))
    total = np.add(down, up)
    print(
        f"{'bytes a run costs the page':<26} median {np.median(total) / 1e3:7.1f} KB"
        f" (down {np.median(down) / 1e3:.1f} KB, of which the stream"
        f" {np.median(streamed) / 1e3:.1f} KB; up {np.median(up) / 1e3:.1f} KB,"
        " the image and the requests' headers)"
    )


if __name__ == "__main__":
    main()
