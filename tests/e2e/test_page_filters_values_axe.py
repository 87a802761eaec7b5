"""The page for a whole class (issue 17): readable filters for every layer, exact values
fetched only when a cell is read, the spread slider, the Draw tab for digits, focus that
looks unlike selection, and axe-core's accessibility rules at 0 violations."""

import io
import os
from pathlib import Path

import httpx
import numpy as np
import pytest
from playwright.sync_api import expect

from tests.e2e import test_viewer
from tests.e2e.pointer import point_at, point_at_cell
from tests.e2e.test_viewer import Viewer

pytestmark = pytest.mark.browser

# The viewer's fixtures (a page on the live server that logs no errors and asks nothing of
# another origin), shared with test_viewer.py.
viewer_on = test_viewer.viewer_on
viewer = test_viewer.viewer

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = os.environ.get("CONVSCOPE_SCREENSHOTS")


def weights(viewer: Viewer, model: str, index: int) -> np.ndarray:
    url = f"{viewer.base_url}/api/models/{model}/layers/{index}/weights.npy"
    return np.load(io.BytesIO(httpx.get(url, timeout=30).content), allow_pickle=False)


def hover_cell(viewer: Viewer, tile: int, row: int, col: int, size: tuple[int, int]) -> None:
    kh, kw = size
    tile_image = viewer.page.locator("#filters-grid .filter-tile img").nth(tile)
    point_at(tile_image, (col + 0.5) / kw, (row + 0.5) / kh)


def shot(viewer: Viewer, name: str) -> None:
    if SHOTS:
        viewer.page.locator("#filters").screenshot(path=str(Path(SHOTS) / name))


def test_first_layer_filters_fit_the_panel_with_their_numbers(viewer: Viewer) -> None:
    page = viewer.page
    for width, height in ((1280, 720), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        viewer.open("?model=mnist&layer=0&slice=5")
        tiles = page.locator("#filters-grid .filter-tile")
        expect(tiles).to_have_count(16)
        expect(page.locator("#filters-title")).to_have_text("Filters of conv1")
        grid = page.locator("#filters-grid").bounding_box()
        panel = page.locator("#detail").bounding_box()
        # Not a clipped 62 px column: a grid within the panel, every tile labelled.
        assert grid["x"] + grid["width"] <= panel["x"] + panel["width"] + 1
        assert grid["height"] < 200 if width >= 1280 else grid["height"] < 420
        assert tiles.nth(15).locator("figcaption").inner_text() == "15"
        expect(tiles.nth(5)).to_have_class("filter-tile selected")  # the selected slice's
        weight = weights(viewer, "mnist", 0)  # (16, 1, 3, 3)
        hover_cell(viewer, 7, 2, 1, (3, 3))
        readout = page.locator("#filters-readout")
        expect(readout).to_contain_text("filter 7, row 2, col 1")
        assert np.float32(readout.get_attribute("data-value")) == weight[7, 0, 2, 1]
        shot(viewer, f"filters-mnist-conv1-{width}.png")

    # A photo model's first filters: colour pictures, and the numbers of all three colours.
    page.set_viewport_size({"width": 1280, "height": 720})
    viewer.open("?model=cifar10&layer=0")
    expect(page.locator("#filters-grid .filter-tile")).to_have_count(32)
    hover_cell(viewer, 3, 0, 2, (3, 3))
    readout = page.locator("#filters-readout")
    expect(readout).to_contain_text("filter 3, row 0, col 2")
    values = [np.float32(v) for v in readout.get_attribute("data-value").split(",")]
    assert values == list(weights(viewer, "cifar10", 0)[3, :, 0, 2])


def test_a_deep_layer_shows_the_selected_slices_filter_one_slice_a_tile(
    viewer: Viewer,
) -> None:
    page = viewer.page
    viewer.open("?model=cifar10&layer=12&slice=3")  # conv6: 128 filters of 3x3x128
    section = page.locator("#filters")
    expect(section).to_have_attribute("data-filter", "3")
    expect(page.locator("#filters-title")).to_have_text("Filter 3 of conv6")
    tiles = page.locator("#filters-grid .filter-tile")
    expect(tiles).to_have_count(128)
    grid = page.locator("#filters-grid").bounding_box()
    assert grid["height"] < 480, grid  # not a 993 px grid of every filter at once
    weight = weights(viewer, "cifar10", 12)  # (128, 128, 3, 3)
    hover_cell(viewer, 100, 1, 2, (3, 3))
    readout = page.locator("#filters-readout")
    expect(readout).to_contain_text("filter 3, input slice 100, row 1, col 2")
    assert np.float32(readout.get_attribute("data-value")) == weight[3, 100, 1, 2]
    shot(viewer, "filters-cifar10-conv6.png")

    # The next depth slice (arrow down) brings its own filter, fetched alone.
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.locator("body").press("ArrowDown")
    expect(section).to_have_attribute("data-filter", "4")
    hover_cell(viewer, 100, 1, 2, (3, 3))
    expect(readout).to_contain_text("filter 4, input slice 100")
    assert np.float32(readout.get_attribute("data-value")) == weight[4, 100, 1, 2]
    assert [u for u in requests if "weights" in u] == [
        f"{viewer.base_url}/api/models/cifar10/layers/12/weights.npy?filter=4"
    ]

    # fc: the selected output's weights, one 4x4 tile per depth slice of pool3, named.
    page.locator('#layer-row .layer-box[data-index="15"]').click()
    expect(page.locator("#filters-title")).to_have_text("Weights of fc1's output 4 (deer)")
    fc = weights(viewer, "cifar10", 15).reshape(10, 128, 4, 4)
    hover_cell(viewer, 9, 3, 0, (4, 4))
    expect(readout).to_contain_text("output 4, input slice 9, row 3, col 0")
    assert np.float32(readout.get_attribute("data-value")) == fc[4, 9, 3, 0]


def test_exact_values_are_fetched_only_for_the_slice_read(viewer: Viewer) -> None:
    page = viewer.page
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    viewer.open("?model=cifar10&sample=cifar10-cat-0000&layer=0&slice=2")
    run_id = viewer.wait_for_run("cifar10")
    page.wait_for_timeout(500)
    assert [u for u in requests if "/layers/0." in u] == []  # nothing until a cell is read
    canvas = page.locator("#slice-canvas")
    point_at_cell(canvas, (32, 32), 6, 4)
    value = page.locator("#hover-value[data-value]")
    expect(value).to_have_attribute("data-row", "6")
    point_at_cell(canvas, (32, 32), 6, 9)
    expect(value).to_have_attribute("data-col", "9")
    fetched = [u for u in requests if "/layers/0." in u]
    assert fetched == [f"{viewer.base_url}/api/runs/{run_id}/layers/0.npy?slice=2"]
    body = httpx.get(f"{viewer.base_url}/api/runs/{run_id}/layers/0.json", timeout=30).json()
    assert float(value.get_attribute("data-value")) == body["values"][6][9][2]
    size = len(httpx.get(fetched[0], timeout=30).content)
    assert size < 32 * 32 * 4 + 256  # one float32 slice, where the JSON was 654 KB


def test_the_spread_slider_acts_over_its_whole_range_on_conv6(viewer: Viewer) -> None:
    page = viewer.page
    viewer.open("?model=cifar10&sample=cifar10-ship-0000&layer=12")
    viewer.wait_for_run("cifar10")
    expect(page.locator("#volume-canvas")).to_be_visible()

    def picture(spread: float) -> str:
        page.evaluate(
            """(value) => {
                const range = document.getElementById('spread-range');
                range.value = String(value);
                range.dispatchEvent(new Event('input', {bubbles: true}));
            }""",
            spread,
        )
        page.wait_for_timeout(200)  # two animation frames
        return page.evaluate("() => document.getElementById('volume-canvas').toDataURL()")

    pictures = [picture(s) for s in (0.35, 0.6, 0.85, 1.0)]
    assert len(set(pictures)) == 4


def test_mnist_chosen_in_the_picker_opens_the_draw_tab(viewer: Viewer) -> None:
    page = viewer.page
    viewer.open("?model=cifar10")
    expect(page.locator("#tab-samples")).to_have_attribute("aria-selected", "true")
    page.locator("#model-select").select_option("mnist")
    expect(page.locator("#tab-draw")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#draw-pad")).to_be_visible()
    page.locator("#model-select").select_option("cifar10")
    expect(page.locator("#tab-samples")).to_have_attribute("aria-selected", "true")
    # A tab the user chose stays chosen.
    page.locator("#tab-upload").click()
    page.locator("#model-select").select_option("mnist")
    expect(page.locator("#tab-upload")).to_have_attribute("aria-selected", "true")


def test_focus_looks_unlike_selection(viewer: Viewer) -> None:
    page = viewer.page
    viewer.open("?model=cifar10&sample=cifar10-ship-0000&layer=0")
    viewer.wait_for_run("cifar10")
    page.locator("body").press("ArrowRight")  # layer 1: selected and focused
    focused = page.locator('#layer-row .layer-box[data-index="1"]')
    expect(focused).to_be_focused()
    expect(focused).to_have_attribute("aria-pressed", "true")
    colours = page.evaluate(
        """() => {
            const rgb = (c) => c.match(/\\d+/g).slice(0, 3).join(',');
            const box = document.querySelector('#layer-row .layer-box[data-index="1"]');
            const style = getComputedStyle(box);
            return {ring: rgb(style.outlineColor), ringWidth: style.outlineWidth,
                    selected: rgb(style.borderTopColor)};
        }"""
    )
    assert colours["ringWidth"] != "0px"
    assert colours["ring"] != colours["selected"], colours


def test_axe_finds_no_violations_on_the_main_page(viewer: Viewer) -> None:
    if not AXE.exists():
        message = "axe-core is not installed: run `npm ci` in the repository root"
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(f"the accessibility test must run in CI; {message}")
        pytest.skip(message)
    page = viewer.page
    page.add_init_script(path=str(AXE))  # a script of the test's, not subject to the CSP
    checks = [
        ("?model=cifar10&sample=cifar10-cat-0000&layer=0", "cifar10"),
        ("?model=cifar10&sample=cifar10-cat-0000&layer=15", "cifar10"),
        ("?model=mnist&sample=mnist-1-0002&layer=0", "mnist"),
    ]
    for query, model in checks:
        viewer.open(query)
        viewer.wait_for_run(model)
        expect(page.locator("#filters-grid .filter-tile").first).to_be_visible()
        violations = page.evaluate(
            """async () => (await axe.run(document)).violations.map((v) =>
                `${v.id} (${v.nodes.length}): ${v.nodes[0].target.join(' ')}: ` +
                v.nodes[0].failureSummary)"""
        )
        assert violations == [], f"{query}: {violations}"
