"""'How this number is computed' in a real browser: click (or Enter on) a neuron of the
enlarged slice in a conv, pool, fc and softmax layer; the panel's number is the layer's
exact one; the step-through and Shift+arrows move the neuron; a reload restores it."""

import os
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e import test_viewer
from tests.e2e.pointer import point_at_cell
from tests.e2e.test_viewer import Viewer

# The viewer's own fixtures: a page on the live server that logs no errors and asks
# nothing of another origin.
viewer_on = test_viewer.viewer_on
viewer = test_viewer.viewer

pytestmark = pytest.mark.browser


SAMPLE = "?model=cifar10&sample=cifar10-cat-0000"


def exact(viewer: Viewer, run_id: str, layer: int, row: int, col: int, depth: int) -> float:
    url = f"{viewer.base_url}/api/runs/{run_id}/layers/{layer}.json"
    return httpx.get(url, timeout=30).json()["values"][row][col][depth]


def click_cell(viewer: Viewer, shape: list[int], row: int, col: int) -> None:
    h, w, _ = shape
    point_at_cell(viewer.page.locator("#slice-canvas"), (h, w), row, col, click=True)


def expect_neuron(viewer: Viewer, run_id: str, kind: str, layer: int, row: int, col: int, d: int):
    panel = viewer.page.locator("#neuron-panel")
    expect(panel).to_have_attribute("data-state", "ready")
    expect(panel).to_have_attribute("data-kind", kind)
    for name, value in (("layer", layer), ("row", row), ("col", col), ("depth", d)):
        expect(panel).to_have_attribute(f"data-{name}", str(value))
    value = exact(viewer, run_id, layer, row, col, d)
    assert float(panel.get_attribute("data-value")) == value
    shown = viewer.page.locator("#neuron-value").inner_text().replace("\u2212", "-")
    assert float(shown) == pytest.approx(value, rel=1e-6, abs=1e-30)
    expect(viewer.page.locator("#neuron-result")).to_contain_text("add up to this very number")


def test_a_conv_neuron_steps_moves_and_comes_back_from_the_url(viewer: Viewer) -> None:
    page = viewer.page
    viewer.open(f"{SAMPLE}&layer=5&slice=3")
    run_id = viewer.wait_for_run("cifar10")
    shape = viewer.models()["cifar10"]["layers"][5]["shape"]  # conv3: 16x16x64 over 32 channels
    expect(page.locator("#neuron-panel")).to_be_hidden()
    click_cell(viewer, shape, 4, 7)
    expect_neuron(viewer, run_id, "conv", 5, 4, 7, 3)
    assert viewer.query()["neuron"] == "4,7"
    # 3 of the 32 channels in full, the other 29 summarised, never a wall of 32.
    expect(page.locator("#neuron-content .nc-channel")).to_have_count(3)
    expect(page.locator("#neuron-rest")).to_contain_text("the other 29 channels")
    expect(page.locator("#neuron-weights")).to_contain_text("3×3×32 + 1 = 289 weights")
    expect(page.locator("#neuron-weights")).to_contain_text("16×16×32 + 1 = 8,193")
    # The receptive field of the chosen neuron stays drawn when the pointer leaves.
    page.mouse.move(5, 5)
    expect(page.locator("#rf-caption")).to_contain_text("rows 4–13, cols 10–19")

    page.locator("#neuron-next").click()
    expect_neuron(viewer, run_id, "conv", 5, 4, 8, 3)
    page.locator("#neuron-speed").select_option("4")
    page.locator("#neuron-play").click()
    expect(page.locator("#neuron-play")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#neuron-panel")).to_have_attribute("data-col", "10", timeout=20_000)
    page.locator("#neuron-play").click()
    expect(page.locator("#neuron-play")).to_have_attribute("aria-pressed", "false")
    # Where the pause caught it: at least two steps on, perhaps on a later row when the
    # machine is slow to deliver the click.
    panel = page.locator("#neuron-panel")
    row, col = int(panel.get_attribute("data-row")), int(panel.get_attribute("data-col"))
    assert (row, col) >= (4, 10)
    expect_neuron(viewer, run_id, "conv", 5, row, col, 3)

    # Shift+arrows move the neuron; the plain arrows still change layer and slice.
    below, left = min(row + 1, 15), max(col - 1, 0)  # conv3 is 16x16
    page.locator("#neuron-title").click()
    page.keyboard.press("Shift+ArrowDown")
    page.keyboard.press("Shift+ArrowLeft")
    expect_neuron(viewer, run_id, "conv", 5, below, left, 3)
    page.keyboard.press("ArrowDown")
    expect_neuron(viewer, run_id, "conv", 5, below, left, 4)
    assert viewer.query()["neuron"] == f"{below},{left}" and viewer.query()["slice"] == "4"

    page.reload()
    run_id = viewer.wait_for_run("cifar10")
    expect_neuron(viewer, run_id, "conv", 5, below, left, 4)
    page.keyboard.press("Escape")
    expect(page.locator("#neuron-panel")).to_be_hidden()
    assert "neuron" not in viewer.query()


def test_enter_on_the_slice_opens_a_pool_neuron_with_its_maximum(viewer: Viewer) -> None:
    page = viewer.page
    viewer.open(f"{SAMPLE}&layer=4&slice=6")
    run_id = viewer.wait_for_run("cifar10")
    canvas = page.locator("#slice-canvas")
    canvas.focus()
    page.keyboard.press("ArrowRight")  # the first arrow picks the middle cell, (8, 8)
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")
    expect_neuron(viewer, run_id, "pool", 4, 8, 9, 6)
    window = [exact(viewer, run_id, 3, 16 + i, 18 + j, 6) for i in range(2) for j in range(2)]
    assert float(page.locator("#neuron-panel").get_attribute("data-value")) == max(window)
    expect(page.locator("#neuron-content .nc-max")).to_have_count(1)


def test_the_fc_and_softmax_neurons_show_their_terms_and_division(viewer: Viewer) -> None:
    page = viewer.page
    viewer.open(f"{SAMPLE}&layer=15&slice=3")
    run_id = viewer.wait_for_run("cifar10")
    click_cell(viewer, [1, 1, 10], 0, 0)
    expect_neuron(viewer, run_id, "fc", 15, 0, 0, 3)
    expect(page.locator("#neuron-terms tbody tr")).to_have_count(12)
    expect(page.locator("#neuron-map")).to_be_visible()
    expect(page.locator("#neuron-weights")).to_contain_text("4×4×128 + 1 = 2,049 weights")
    page.keyboard.press("Shift+ArrowRight")  # a 1x1xD volume: the next class
    expect_neuron(viewer, run_id, "fc", 15, 0, 0, 4)

    page.locator('#layer-row .layer-box[data-index="16"]').click()
    expect_neuron(viewer, run_id, "softmax", 16, 0, 0, 4)
    expect(page.locator("#neuron-classes tbody tr")).to_have_count(10)
    expect(page.locator("#neuron-classes tr.nc-chosen")).to_contain_text("deer")
    assert viewer.query()["neuron"] == "0,0" and viewer.query()["layer"] == "16"


@pytest.mark.parametrize("presenter", [False, True])
def test_the_panel_at_projector_size(viewer: Viewer, presenter: bool) -> None:
    """The panel on a 1280x720 screen: it fits the width, and (with CONVSCOPE_SCREENSHOTS
    set) the README's pictures of it are taken here."""
    page = viewer.page
    if presenter:
        page.add_init_script("localStorage.setItem('convscope.presenter', '1')")
    viewer.open(f"{SAMPLE}&layer=5&slice=3&neuron=4,7")
    viewer.wait_for_run("cifar10")
    expect(page.locator("#neuron-panel")).to_have_attribute("data-state", "ready")
    # Normal: the slice with its chosen neuron above the panel; presenter: the panel itself.
    top = "neuron-panel" if presenter else "detail-grid"
    page.evaluate(f"document.getElementById('{top}').scrollIntoView({{block: 'start'}})")
    page.wait_for_timeout(300)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow == 0
    if directory := os.environ.get("CONVSCOPE_SCREENSHOTS"):
        Path(directory).mkdir(parents=True, exist_ok=True)
        name = f"neuron-1280x720{'-presenter' if presenter else ''}.png"
        page.screenshot(path=str(Path(directory) / name))
