"""The channel view in a real browser: a chosen slice's top patches and its visualisation
appear, hover says where a patch came from, the replay runs, the gallery selects slices."""

import os
import sys
from pathlib import Path

import pytest
from playwright.sync_api import expect

import model
from tests.channels.tiny import tiny_images, write_test_index
from tests.e2e.test_viewer import TIMEOUT_MS, viewer_on  # noqa: F401 (a fixture)

pytestmark = pytest.mark.browser
expect.set_options(timeout=60_000)


def test_a_chosen_slice_shows_its_top_patches_and_visualisation(
    viewer_on,  # noqa: F811
    run_server,
    tmp_path: Path,
) -> None:
    try:
        net = model.load("mnist")
    except FileNotFoundError:
        net = model.build("mnist")
    write_test_index(
        net, "mnist", tmp_path / "channels" / "mnist.channels", tiny_images(12, 4, (28, 28, 1))
    )
    env = {
        "CONVSCOPE_RUNS_DIR": str(tmp_path / "runs"),
        "CONVSCOPE_CHANNELS_DIR": str(tmp_path / "channels"),
        "CONVSCOPE_CHANNEL_CACHE_DIR": str(tmp_path / "cache"),
    }
    with run_server([sys.executable, "-m", "app", "serve"], env={**os.environ, **env}) as base_url:
        viewer = viewer_on(base_url)
        page = viewer.page
        viewer.open("?model=mnist&layer=0&slice=2")
        view = page.locator("#channel-view")
        expect(view).to_be_visible()
        expect(page.locator("#channel-title")).to_have_text("Channel 2 of conv1")
        patches = page.locator("#examples-grid .example-image")
        expect(patches).to_have_count(9)
        # Polled with evaluate (CDP), not wait_for_function: its eval is refused by the CSP.
        loaded = (
            "[...document.querySelectorAll('#examples-grid img')].every(i => i.naturalWidth > 0)"
        )
        for _ in range(TIMEOUT_MS // 250):
            if page.evaluate(loaded):
                break
            page.wait_for_timeout(250)
        assert page.evaluate(loaded), "the nine patch pictures never loaded"
        patches.nth(0).hover()
        expect(page.locator("#example-readout")).to_contain_text("test/")
        expect(view).to_have_attribute("data-vis", "done", timeout=TIMEOUT_MS)
        expect(page.locator("#vis-caption")).to_contain_text("mean activation")
        page.locator("#vis-replay").click()
        expect(page.locator("#vis-caption")).to_contain_text("done after", timeout=TIMEOUT_MS)

        page.locator("#channel-gallery summary").click()
        tiles = page.locator("#gallery-grid .gallery-tile")
        expect(tiles).to_have_count(16)
        expect(page.locator("#gallery-grid .gallery-tile.loaded").first).to_be_visible()
        tiles.nth(5).click()
        expect(page.locator("#channel-title")).to_have_text("Channel 5 of conv1")
        assert viewer.query()["slice"] == "5"
        expect(tiles.nth(5)).to_have_attribute("aria-pressed", "true")

        fc = [layer["kind"] for layer in viewer.models()["mnist"]["layers"]].index("fc")
        page.goto(f"{base_url}/?model=mnist&layer={fc}&slice=0")
        expect(page.locator("#layer-row .layer-box").first).to_be_visible()
        expect(view).to_be_hidden()
        page.close()  # before the server stops: a request still under way would be refused
