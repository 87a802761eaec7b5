"""The page for a whole class (issue 17): phones, links that restore any run, presenter
mode on a projector, a bad file that keeps the good run, words that teach, and a slow
classroom network (a photo shrunk before it goes up, the upload shown as its own step)."""

from __future__ import annotations

import base64
import io
import json
import os
import re
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from tests.e2e import test_viewer
from tests.e2e.pointer import point_at_cell
from tests.e2e.test_viewer import Viewer, _png

viewer_on = test_viewer.viewer_on
viewer = test_viewer.viewer

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
TABLET = {"width": 820, "height": 1180}
SAMPLE = "?model=cifar10&sample=cifar10-cat-0000"
SHOTS = os.environ.get("CONVSCOPE_SCREENSHOTS")


def shot(page: Page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=f"{SHOTS}/{name}.png")


def exact(viewer: Viewer, run_id: str, layer: int, row: int, col: int, depth: int) -> float:
    url = f"{viewer.base_url}/api/runs/{run_id}/layers/{layer}.json"
    return httpx.get(url, timeout=30).json()["values"][row][col][depth]


def sideways(page: Page) -> int:
    return page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")


# --- phones and tablets -------------------------------------------------------------------


@pytest.mark.parametrize("size", [PHONE, TABLET], ids=["phone", "tablet"])
def test_on_a_touch_screen_nothing_scrolls_sideways_and_a_tap_reads_a_cell(
    viewer_on, live_server: str, size: dict
) -> None:
    viewer = viewer_on(live_server, has_touch=True, is_mobile=True)
    page = viewer.page
    page.set_viewport_size(size)
    viewer.open(f"{SAMPLE}&layer=2&slice=3")
    run_id = viewer.wait_for_run("cifar10")
    page.wait_for_timeout(300)
    assert sideways(page) == 0
    # The status and every top-bar button are on the screen, not off to the right.
    for selector in ("#run-status", "#presenter-toggle", "#model-select"):
        box = page.locator(selector).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= size["width"], selector
    # The enlarged slice starts on the first screen (it was 1,530 px down on a phone).
    canvas = page.locator("#slice-canvas")
    assert canvas.bounding_box()["y"] < size["height"]
    shot(page, f"class-{size['width']}x{size['height']}")

    # Hints speak of taps, and a tap on a cell shows its exact value.
    expect(page.locator("#hover-readout")).to_contain_text("Tap a cell")
    expect(page.locator("#rf-caption")).to_contain_text("tap the slice")
    expect(page.locator(".keys.touch-only")).to_be_visible()
    expect(page.locator(".keys.mouse-only")).to_be_hidden()
    h, w, _ = viewer.models()["cifar10"]["layers"][2]["shape"]
    box = canvas.bounding_box()
    cell = min(box["width"] / w, box["height"] / h)
    page.touchscreen.tap(box["x"] + 7.5 * cell, box["y"] + 5.5 * cell)
    value = page.locator("#hover-value[data-value]")
    expect(value).to_have_attribute("data-row", "5")
    expect(value).to_have_attribute("data-col", "7")
    assert float(value.get_attribute("data-value")) == exact(viewer, run_id, 2, 5, 7, 3)
    # One tap reads; a second tap on the same cell opens how it is computed.
    expect(page.locator("#neuron-panel")).to_be_hidden()
    page.touchscreen.tap(box["x"] + 7.5 * cell, box["y"] + 5.5 * cell)
    expect(page.locator("#neuron-panel")).to_have_attribute("data-state", "ready")
    page.wait_for_timeout(300)
    assert sideways(page) == 0
    shot(page, f"class-{size['width']}x{size['height']}-neuron")


def test_with_a_mouse_the_hints_say_hover(viewer: Viewer) -> None:
    viewer.open(f"{SAMPLE}&layer=2&slice=3")
    viewer.wait_for_run("cifar10")
    assert sideways(viewer.page) == 0
    expect(viewer.page.locator("#hover-readout")).to_contain_text("Hover a cell")
    expect(viewer.page.locator(".keys.mouse-only")).to_be_visible()
    expect(viewer.page.locator(".keys.touch-only")).to_be_hidden()


# --- shared links ---------------------------------------------------------------------------


def test_a_link_copied_after_an_upload_restores_the_whole_view(
    viewer_on, live_server: str, tmp_path: Path
) -> None:
    teacher = viewer_on(live_server)
    page = teacher.page
    teacher.open("?model=cifar10")
    image = tmp_path / "photo.png"
    image.write_bytes(_png((60, 50), seed=3))
    page.set_input_files("#file-input", str(image))
    run_id = teacher.wait_for_run("cifar10")
    expect(page).to_have_url(re.compile(f"run={run_id}"))
    page.locator('#layer-row .layer-box[data-index="5"]').click()
    page.locator('#slice-grid .slice-tile[data-slice="4"]').click()
    page.select_option("#sequential-select", "magma")
    page.locator('input[name="scale"][value="slice"]').check()
    volume = page.locator("#volume-canvas").bounding_box()
    page.mouse.move(volume["x"] + volume["width"] / 2, volume["y"] + volume["height"] / 2)
    page.mouse.down()
    page.mouse.move(
        volume["x"] + volume["width"] / 2 + 60, volume["y"] + volume["height"] / 2 + 15, steps=4
    )
    page.mouse.up()
    point_at_cell(page.locator("#slice-canvas"), (16, 16), 2, 9, click=True)
    expect(page.locator("#neuron-panel")).to_have_attribute("data-state", "ready")
    query = teacher.query()
    assert query["run"] == run_id and "sample" not in query
    assert (query["layer"], query["slice"], query["neuron"]) == ("5", "4", "2,9")
    assert (query["colors"], query["scale"]) == ("magma", "slice")
    assert re.fullmatch(r"-?\d+\.\d\d,-?\d+\.\d\d", query["angle"])
    link = page.url

    student = viewer_on(live_server)
    student.page.goto(link)
    assert student.wait_for_run("cifar10") == run_id
    spage = student.page
    expect(spage.locator("#original-image")).to_have_attribute(
        "src", re.compile(f"/api/runs/{run_id}/input.png")
    )
    expect(spage.locator("#detail-title")).to_contain_text("conv3")
    expect(spage.locator('#slice-grid .slice-tile[aria-selected="true"]')).to_have_attribute(
        "data-slice", "4"
    )
    expect(spage.locator("#neuron-panel")).to_have_attribute("data-row", "2")
    expect(spage.locator("#neuron-panel")).to_have_attribute("data-col", "9")
    expect(spage.locator("#sequential-select")).to_have_value("magma")
    expect(spage.locator('input[name="scale"][value="slice"]')).to_be_checked()
    assert student.query()["angle"] == query["angle"]
    # The 3D view is turned as the teacher turned it: not as a link without the angle shows it.
    unturned = viewer_on(live_server)
    unturned.page.goto(link.replace(f"angle={query['angle'].replace(',', '%2C')}", ""))
    unturned.wait_for_run("cifar10")
    expect(unturned.page.locator("#neuron-panel")).to_have_attribute("data-state", "ready")
    spage.wait_for_timeout(300)
    assert "angle" not in unturned.query()
    assert test_viewer._pixels(spage, "#volume-canvas") != test_viewer._pixels(
        unturned.page, "#volume-canvas"
    )


def test_a_link_to_an_expired_run_says_so_and_offers_the_upload(viewer: Viewer) -> None:
    viewer.allowed_problems.append("Failed to load resource")
    viewer.open(f"?model=cifar10&run={'ab' * 16}&layer=3")
    error = viewer.page.locator("#error")
    expect(error).to_contain_text("has expired on the server")
    assert error.inner_text().count(".") == 1  # one sentence
    upload = error.get_by_role("button", name="Upload the picture again")
    expect(upload).to_be_visible()
    with viewer.page.expect_file_chooser() as chooser:
        upload.click()
    assert chooser.value.element.get_attribute("id") == "file-input"
    expect(viewer.page.locator("#tab-upload")).to_have_attribute("aria-selected", "true")


# --- presenter mode on a projector ------------------------------------------------------------


def _sizes(page: Page) -> dict[str, float]:
    return page.evaluate(
        """() => {
            const px = (selector, property) =>
                parseFloat(getComputedStyle(document.querySelector(selector))[property]);
            return {
                slice: document.getElementById('slice-canvas').getBoundingClientRect().width,
                prediction: px('.prediction-class', 'fontSize'),
                score: px('#score-bars .score', 'fontSize'),
                title: px('#focus-title', 'fontSize'),
            };
        }"""
    )


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (1920, 1080)])
def test_presenter_mode_makes_the_slice_scores_and_labels_projector_sized(
    viewer_on, live_server: str, width: int, height: int
) -> None:
    viewer = viewer_on(live_server)
    page = viewer.page
    page.set_viewport_size({"width": width, "height": height})
    viewer.open(f"{SAMPLE}&layer=2&slice=5")
    viewer.wait_for_run("cifar10")
    normal = _sizes(page)
    page.keyboard.press("p")
    expect(page.locator("html")).to_have_class(re.compile("presenter"))
    page.wait_for_timeout(400)
    shown = _sizes(page)
    shot(page, f"presenter-{width}x{height}")
    assert shown["slice"] >= 1.25 * normal["slice"], (normal, shown)
    assert shown["prediction"] >= 1.4 * normal["prediction"], (normal, shown)
    assert shown["score"] >= 1.15 * normal["score"], (normal, shown)
    assert shown["title"] >= 1.1 * normal["title"], (normal, shown)
    assert sideways(page) == 0
    for selector in ("#slice-canvas", ".prediction-class", "#score-bars"):
        box = page.locator(selector).bounding_box()
        assert box["y"] + box["height"] <= height, selector


# --- a bad file -------------------------------------------------------------------------------


def test_a_bad_file_keeps_the_good_run_and_says_what_the_file_was(
    viewer: Viewer, tmp_path: Path
) -> None:
    viewer.allowed_problems.append("Failed to load resource")
    viewer.open(f"{SAMPLE}&layer=2")
    run_id = viewer.wait_for_run("cifar10")
    prediction = viewer.page.locator(".prediction-class").inner_text()
    notes = tmp_path / "notes.png"
    notes.write_text("Homework: bring a photo of a cat.\n")
    viewer.page.set_input_files("#file-input", str(notes))
    error = viewer.page.locator("#error")
    expect(error).to_contain_text("This file is text, not an image")
    expect(viewer.page.locator("body")).to_have_attribute("data-run-state", "error")
    # The run before stays: its boxes, its slice, its scores and its link.
    assert viewer.page.evaluate("document.body.dataset.run") == run_id
    expect(viewer.page.locator("#layer-row .layer-box.arrived")).to_have_count(18)
    expect(viewer.page.locator(".prediction-class")).to_have_text(prediction)
    expect(viewer.page.locator("#slice-grid .slice-tile")).to_have_count(32)
    expect(viewer.page.locator("#original-image")).to_be_visible()
    assert viewer.query()["sample"] == "cifar10-cat-0000"


def test_the_servers_sentence_says_what_a_file_looks_like(live_server: str) -> None:
    cases = {
        b"Homework: bring a photo.\n": "text",
        b"%PDF-1.7\n...": "a PDF document",
        b'<svg xmlns="http://www.w3.org/2000/svg"></svg>': "an SVG drawing",
        b"\x00\x00\x00\x18ftypheic\x00\x00": "a HEIC photo",
    }
    for body, what in cases.items():
        response = httpx.post(
            f"{live_server}/api/models/cifar10/forward",
            files={"image": ("file.png", body, "image/png")},
            timeout=30,
        )
        assert response.status_code == 415
        assert response.json()["detail"].startswith(f"This file is {what}"), response.json()


# --- words that teach ------------------------------------------------------------------------


def test_each_layer_kind_says_what_it_does_and_relu_and_pool_show_the_volume_before(
    viewer: Viewer,
) -> None:
    page = viewer.page
    viewer.open(f"{SAMPLE}&layer=0&slice=4")
    viewer.wait_for_run("cifar10")
    lesson = page.locator("#layer-lesson")
    expect(lesson).to_contain_text("A CONV layer slides 32 small filters (3×3×3)")
    expect(page.locator("#before-figure")).to_be_hidden()

    page.locator('#layer-row .layer-box[data-index="1"]').click()
    expect(lesson).to_contain_text("A RELU layer keeps every positive number")
    before = page.locator("#before-figure")
    expect(before).to_be_visible()
    expect(page.locator("#before-caption")).to_contain_text("before: conv1, slice 4")
    page.locator('#layer-row .layer-box[data-index="4"]').click()
    expect(lesson).to_contain_text("32×32 to 16×16")
    expect(page.locator("#before-caption")).to_contain_text("before: relu2, slice 4")
    # A different layer, a different volume before it.
    painted = test_viewer._pixels(page, "#before-canvas")
    page.locator('#layer-row .layer-box[data-index="3"]').click()
    expect(before).to_be_visible()
    assert test_viewer._pixels(page, "#before-canvas") != painted

    # The words hide with one click and stay hidden after a reload.
    page.locator("#lesson-toggle").click()
    expect(lesson).to_be_hidden()
    page.reload()
    viewer.wait_for_run("cifar10")
    expect(page.locator("#layer-lesson")).to_be_hidden()
    expect(page.locator("#lesson-toggle")).to_have_attribute("aria-pressed", "false")


def test_fc_and_softmax_are_ten_labelled_bars_and_see_every_input_pixel(viewer: Viewer) -> None:
    page = viewer.page
    viewer.open(f"{SAMPLE}&layer=16")
    run_id = viewer.wait_for_run("cifar10")
    classes = viewer.models()["cifar10"]["classes"]
    tiles = page.locator("#slice-grid .slice-tile")
    expect(tiles).to_have_count(10)
    expect(page.locator("#slice-grid .class-bar")).to_have_count(10)
    assert [t.inner_text().split("\n")[0].strip() for t in tiles.all()] == classes
    probabilities = httpx.get(f"{viewer.base_url}/api/runs/{run_id}", timeout=30).json()[
        "probabilities"
    ]
    top = int(np.argmax(probabilities))
    shown = tiles.nth(top).locator(".class-value").inner_text()
    assert shown == f"{100 * probabilities[top]:.1f}%"
    widths = [t.locator(".class-fill").bounding_box()["width"] for t in tiles.all()]
    assert int(np.argmax(widths)) == top
    expect(page.locator("#layer-facts")).to_contain_text("receptive fieldevery input pixel")
    expect(page.locator("#rf-caption")).to_have_text("receptive field: every input pixel")
    expect(page.locator("#layer-lesson")).to_contain_text(
        "SOFTMAX turns the scores into probabilities"
    )
    expect(page.locator("#classes-note")).to_contain_text("can only choose among its 10 classes")

    page.locator('#layer-row .layer-box[data-index="15"]').click()
    expect(page.locator("#slice-grid .class-bar.signed")).to_have_count(10)  # scores have signs
    expect(page.locator("#layer-facts")).to_contain_text("every input pixel")
    expect(page.locator("#layer-lesson")).to_contain_text("2,048 numbers")


# --- a slow classroom network -----------------------------------------------------------------


def _photo(size: tuple[int, int]) -> bytes:
    """A smooth photo-like picture (gradients and a disc) saved as a large PNG."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(1)
    pixels = np.stack([x * 255 // w, y * 255 // h, ((x + y) * 127 // (w + h)) + 64], axis=-1)
    pixels[(x - w // 2) ** 2 + (y - h // 2) ** 2 < (h // 4) ** 2] = (230, 40, 40)
    pixels = np.clip(pixels + rng.integers(0, 12, pixels.shape), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def test_a_large_photo_goes_up_shrunk(viewer: Viewer, tmp_path: Path) -> None:
    photo = tmp_path / "big-photo.png"
    photo.write_bytes(_photo((1600, 1200)))
    assert photo.stat().st_size > 1_000_000
    sent = []
    viewer.page.on(
        "request",
        lambda r: (
            r.method == "POST"
            and "/forward" in r.url
            and sent.append(len(r.post_data_buffer or b""))
        ),
    )
    viewer.open("?model=cifar10")
    viewer.page.set_input_files("#file-input", str(photo))
    viewer.wait_for_run("cifar10")
    assert len(sent) == 1 and sent[0] < 100_000, sent
    # The network still sees the same picture: its input is that of the full-size upload.
    full = httpx.post(
        f"{viewer.base_url}/api/models/cifar10/forward",
        files={"image": ("big-photo.png", photo.read_bytes(), "image/png")},
        timeout=60,
    ).text.splitlines()[0]
    expected = np.frombuffer(base64.b64decode(json.loads(full)["input"]["data"]), np.uint8)
    shown = viewer.page.evaluate(
        """() => Array.from(document.getElementById('preprocessed-canvas')
            .getContext('2d').getImageData(0, 0, 32, 32).data)"""
    )
    rgb = np.array(shown, np.int16).reshape(32, 32, 4)[:, :, :3].reshape(-1)
    assert np.abs(rgb - expected.astype(np.int16)).mean() < 6


def test_on_a_slow_network_the_upload_is_its_own_step(viewer: Viewer, tmp_path: Path) -> None:
    page = viewer.page
    viewer.open("?model=cifar10")
    page.evaluate(
        """() => {
            window.statuses = [];
            const status = document.getElementById('run-status');
            new MutationObserver(() => window.statuses.push(status.textContent))
                .observe(status, {childList: true, characterData: true, subtree: true});
        }"""
    )
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    # A classroom's Wi-Fi upstream, slower still: 64 kB/s.
    cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 150,
            "downloadThroughput": 200_000,
            "uploadThroughput": 64_000,
        },
    )
    image = tmp_path / "noise.png"
    image.write_bytes(_png((250, 250), seed=5))  # too small to shrink: ~190 kB go up
    assert image.stat().st_size > 150_000
    page.set_input_files("#file-input", str(image))
    viewer.wait_for_run("cifar10")
    statuses = page.evaluate("window.statuses")
    uploading = [s for s in statuses if re.fullmatch(r"Uploading \d+%", s)]
    percents = [int(s.split()[1][:-1]) for s in uploading]
    assert len(set(percents)) >= 2 and 0 < min(percents) and max(percents) < 100, statuses
    assert percents == sorted(percents)
    computing = next(i for i, s in enumerate(statuses) if s.startswith("Computing conv1"))
    assert computing > statuses.index(uploading[-1])
    # conv1's "ready after" counts the computing, not the seconds the upload took.
    ready = page.locator('#layer-row .layer-box[data-index="0"]')
    ready.click()
    fact = page.locator("#layer-facts .fact", has_text="ready after").inner_text()
    assert float(re.search(r"([\d.]+) ms", fact).group(1)) < 1500, fact
