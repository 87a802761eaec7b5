"""Importing a 224x224 VGG-style ONNX network, and running it: import, forward and page times.

    python benchmarks/import_speed.py [--repeats 3] [--page]

The network (tests/onnx_graphs.py vgg_style, built with onnx.helper, random weights): five
stages of two 3x3 convolutions (64, 128, 256, 512, 512 filters) with ReLU and a 2x2 max
pool, global average pool, fc 512, ReLU, dropout, fc 1000, softmax: 41 MB of ONNX, 10.4
million parameters. Prints the time of `convscope import` end to end (parse, convert,
check forward, write), of the conversion alone, of one image's forward pass (median), the
slowest layers, and ONNX Runtime's forward for scale when it is installed. With --page, a
real server and headless Chromium: from choosing the file to the first and the last layer
drawn, the bytes streamed, the longest task that blocked the page's main thread (the
browser's Long Tasks API: wall time, which on a busy machine includes the time the thread
waited for a core) and, from a Chromium trace of the same run, the main thread's CPU time:
its longest task's and all of it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from app.cli import main as cli  # noqa: E402
from model.onnx_import import convert, onnxruntime_scores, random_input, read_onnx  # noqa: E402
from tests.onnx_graphs import vgg_style  # noqa: E402

LONG_TASKS = """
window.__longtasks = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) window.__longtasks.push(entry.duration);
}).observe({ type: "longtask", buffered: true });
"""


TRACE_CATEGORIES = ["devtools.timeline", "toplevel", "disabled-by-default-devtools.timeline"]


def main_thread_cpu(trace: bytes) -> tuple[float, float]:
    """(longest task, all tasks) of the page's main thread in a Chromium trace, CPU ms."""
    events = json.loads(trace)["traceEvents"]
    names = {
        (e["pid"], e["tid"]): e["args"]["name"]
        for e in events
        if e.get("ph") == "M" and e.get("name") == "thread_name"
    }
    tasks: dict[tuple, list[float]] = {}
    for e in events:
        thread = (e.get("pid"), e.get("tid"))
        main = names.get(thread) == "CrRendererMain"
        if main and e.get("name") == "RunTask" and e.get("ph") == "X":
            tasks.setdefault(thread, []).append(e.get("tdur", 0) / 1000)
    page = max(tasks.values(), key=len, default=[0.0])  # the renderer that did the most
    return max(page), sum(page)


def timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def page_times(models_dir: Path, repeats: int) -> None:
    from local_server import free_port, start_server
    from playwright.sync_api import sync_playwright

    chromium = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
    if not chromium:
        raise SystemExit("install Chromium: apt-get install -y chromium")
    image = REPO / "static" / "samples" / "cifar10" / "cat-0000.jpg"
    port = free_port()
    server = start_server(port, env={"CONVSCOPE_MODELS_DIR": str(models_dir)})
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium)
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.add_init_script(LONG_TASKS)
            page.goto(f"http://127.0.0.1:{port}/?model=vgg")
            page.wait_for_selector("#layer-row .layer-box")
            for repeat in range(repeats):
                page.wait_for_timeout(500)
                page.evaluate("performance.clearMarks(); window.__longtasks.length = 0")
                browser.start_tracing(page=page, categories=TRACE_CATEGORIES)
                page.set_input_files("#file-input", str(image))
                page.wait_for_selector('body[data-run-state="done"]', timeout=300_000)
                page.wait_for_timeout(500)  # the frames after the scores
                longest_cpu, all_cpu = main_thread_cpu(browser.stop_tracing())
                marks = page.evaluate(
                    """() => {
                    const at = (n) => performance.getEntriesByName(n, 'mark').at(-1)?.startTime;
                    return {chosen: at('convscope:file-chosen'),
                            first: at('convscope:first-layer-drawn'),
                            last: at('convscope:last-layer-drawn'),
                            longest: Math.max(0, ...window.__longtasks),
                            blocked: window.__longtasks.reduce((a, b) => a + b, 0)};
                }"""
                )
                first = marks["first"] - marks["chosen"]
                print(
                    f"page run {repeat + 1}: first layer drawn {first:.0f}"
                    f" ms, last {marks['last'] - marks['chosen']:.0f} ms, longest main-thread task"
                    f" {marks['longest']:.0f} ms, all long tasks {marks['blocked']:.0f} ms;"
                    f" main-thread CPU: longest task {longest_cpu:.0f} ms, in all {all_cpu:.0f} ms"
                )
            browser.close()
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--page", action="store_true", help="also time the viewer page")
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    work = Path(tempfile.mkdtemp(prefix="convscope-import-bench-"))
    try:
        data, build_s = timed(lambda: vgg_style().bytes())
        source = work / "vgg.onnx"
        source.write_bytes(data)
        print(f"built {len(data) / 1e6:.1f} MB of ONNX with onnx.helper in {build_s:.1f} s")
        models_dir = work / "models"
        status, import_s = timed(
            cli, ["import", str(source), "--id", "vgg", "--models-dir", str(models_dir)]
        )
        assert status == 0
        print(f"convscope import (parse, convert, check forward, write): {import_s:.2f} s")
        imported, convert_s = timed(lambda: convert(read_onnx(data)))
        print(f"parse + shape inference + convert alone: {convert_s:.2f} s")
        net = imported.network(
            name="vgg",
            classes=[str(i) for i in range(1000)],
            normalization={"mean": [0.0] * 3, "std": [255.0] * 3},
            input_style="photo",
        )
        x = random_input(net)
        with threadpool_limits(1, user_api="blas"):  # as the server computes
            per_layer = np.zeros(len(net.layers))
            totals = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                out = x
                for i, layer in enumerate(net.layers):
                    t = time.perf_counter()
                    out = layer.forward(out)
                    per_layer[i] += time.perf_counter() - t
                totals.append(time.perf_counter() - started)
        print(
            f"forward, one 224x224 image, one thread: median {np.median(totals) * 1000:.0f} ms"
            f" (best {min(totals) * 1000:.0f} ms) over {args.repeats}"
        )
        slowest = np.argsort(per_layer)[::-1][:4]
        print(
            "  slowest layers: "
            + ", ".join(
                f"{net.layers[i].name} {per_layer[i] / args.repeats * 1000:.0f} ms" for i in slowest
            )
        )
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        reference, ort_s = timed(onnxruntime_scores, data, x)
        if reference is not None:
            _, ort_s = timed(onnxruntime_scores, data, x)
            ours = net.predict(x)
            print(
                f"ONNX Runtime (session + run, for scale): {ort_s * 1000:.0f} ms; "
                f"largest difference {np.abs(ours - reference).max():.2g}"
            )
        if args.page:
            numbers = sum(int(np.prod(layer.output_shape)) for layer in net.layers)
            print(f"page: {numbers / 1e6:.1f} million numbers a run, {numbers * 4 / 3e6:.0f} MB")
            page_times(models_dir, args.repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
