"""An imported model on the page, in a real browser against a real server: picked like a
shipped one, its card's facts shown, photos to try borrowed, every layer drawn."""

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from playwright.sync_api import expect

from app.cli import main
from tests.e2e.test_viewer import TIMEOUT_MS, Viewer, viewer_on  # noqa: F401  (a fixture)
from tests.onnx_graphs import Graph

pytestmark = [pytest.mark.browser, pytest.mark.slow]
expect.set_options(timeout=60_000)


def imported_graph() -> Graph:
    graph = Graph((1, 3, 48, 48), seed=2)
    graph.conv(8, (3, 5), stride=2, pads=[1, 2, 1, 2]).batchnorm().op("LeakyRelu", alpha=0.1)
    graph.conv(8, 3, pads=1, group=8).op("Relu")
    graph.op("MaxPool", kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1).op("GlobalAveragePool")
    return graph.op("Flatten").gemm(3).op("Softmax", axis=1)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("models")
    source = directory.parent / "mine.onnx"
    source.write_bytes(imported_graph().bytes())
    args = ["import", str(source), "--id", "mine", "--classes", "cat,dog,bird"]
    assert main([*args, "--models-dir", str(directory)]) == 0
    return directory


@pytest.fixture
def viewer(viewer_on, run_server, models_dir: Path, tmp_path: Path) -> Iterator[Viewer]:  # noqa: F811
    env = {
        **os.environ,
        "CONVSCOPE_MODELS_DIR": str(models_dir),
        "CONVSCOPE_RUNS_DIR": str(tmp_path / "runs"),
    }
    with run_server([sys.executable, "-m", "app", "serve"], env=env) as base_url:
        yield viewer_on(base_url)


def test_an_imported_model_is_shown_like_a_shipped_one(viewer: Viewer, tmp_path: Path) -> None:
    viewer.open("?model=mine")
    page = viewer.page
    assert page.locator("#model-select").input_value() == "mine"
    facts = page.locator("#model-facts")
    expect(facts).to_contain_text("accuracy not measured")
    expect(facts).to_contain_text("imported from mine.onnx on 20")
    layers = viewer.models()["mine"]["layers"]
    expect(page.locator("#layer-row .layer-box")).to_have_count(len(layers) + 1)
    expect(page.locator("#layer-row .kind-conv2d .box-kind").first).to_have_text("CONV2D")
    # No samples of its own: it borrows cifar10's photos, and keeps itself chosen.
    page.locator("#tab-samples").click()
    expect(page.locator("#sample-gallery .sample").first).to_be_visible()
    page.locator("#sample-gallery .sample").first.click()
    viewer.wait_for_run("mine")
    assert viewer.query()["model"] == "mine"
    assert page.locator("#score-bars").inner_text().count("%") >= 3
    page.locator("#layer-row .layer-box").nth(1).click()  # conv2d: its filters
    expect(page.locator("#filters")).to_be_visible()
    expect(page.locator("#filters-caption")).to_contain_text("each 3×5×3")
    for name, size in (("wide", (1280, 720)), ("phone", (390, 844))):
        page.set_viewport_size({"width": size[0], "height": size[1]})
        page.screenshot(path=str(tmp_path / f"imported-{name}.png"), timeout=TIMEOUT_MS)
    if os.environ.get("CONVSCOPE_SCREENSHOTS"):
        for shot in tmp_path.glob("imported-*.png"):
            (Path(os.environ["CONVSCOPE_SCREENSHOTS"]) / shot.name).write_bytes(shot.read_bytes())


@pytest.mark.parametrize(
    "layer, kind, slice_, neuron, shows",
    [
        # the depthwise conv: drawn as a conv, one channel, the one it reads named
        (3, "conv2d", 5, "0,0", "This filter is depthwise: it reads input channel 5 only, of 8"),
        (1, "batchnorm", 2, "6,9", "running mean"),
        # the ceil-mode max pool's last window hangs past the input: minus infinity there
        (5, "maxpool", 1, "11,11", "lie in the padding, which counts as"),
    ],
)
def test_an_imported_kinds_arithmetic_is_shown_from_the_url(
    viewer: Viewer, tmp_path: Path, layer: int, kind: str, slice_: int, neuron: str, shows: str
) -> None:
    page = viewer.page
    viewer.open("?model=mine")
    page.locator("#tab-samples").click()
    page.locator("#sample-gallery .sample").first.click()  # borrowed from cifar10
    viewer.wait_for_run("mine")
    # The neuron comes back from the URL, with the sample that made the run.
    query = {**viewer.query(), "layer": layer, "slice": slice_, "neuron": neuron}
    page.goto(f"{viewer.base_url}/?{urlencode(query)}", timeout=TIMEOUT_MS)
    run_id = viewer.wait_for_run("mine")
    panel = page.locator("#neuron-panel")
    expect(panel).to_have_attribute("data-state", "ready")
    expect(panel).to_have_attribute("data-kind", kind)
    row, col = (int(v) for v in neuron.split(","))
    url = f"{viewer.base_url}/api/runs/{run_id}/layers/{layer}.json"
    exact = httpx.get(url, timeout=30).json()["values"][row][col][slice_]
    assert float(panel.get_attribute("data-value")) == exact
    expect(page.locator("#neuron-result")).to_contain_text("add up to this very number")
    expect(page.locator("#neuron-content")).to_contain_text(shows)
    if kind == "conv2d":
        expect(page.locator("#neuron-content .nc-channel")).to_have_count(1)
        expect(page.locator("#neuron-weights")).to_contain_text("3×3×1 + 1 = 10 weights")
    if kind == "maxpool":
        expect(page.locator("#neuron-content .nc-grid")).to_contain_text("\u2212\u221e")
    panel.scroll_into_view_if_needed()
    shot = tmp_path / f"imported-neuron-{kind}.png"
    page.screenshot(path=str(shot), timeout=TIMEOUT_MS)
    page.locator("#neuron-next").click()
    expect(panel).to_have_attribute("data-col", str(col + 1) if col < 11 else "0")
    expect(panel).to_have_attribute("data-state", "ready")
    if os.environ.get("CONVSCOPE_SCREENSHOTS"):
        (Path(os.environ["CONVSCOPE_SCREENSHOTS"]) / shot.name).write_bytes(shot.read_bytes())
