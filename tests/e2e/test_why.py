"""The Why view in a real browser against a real server: a map appears for the top class,
then for the class clicked, with each method's controls, over the input and the photo."""

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.test_viewer import Viewer, _png, viewer, viewer_on  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

# Mean |heat map picture - plain input| per cell of an h x w grid over the #why-input canvas.
CELL_DIFFERENCES = """([h, w]) => {
  const shown = document.getElementById("why-input");
  const plain = document.createElement("canvas");
  plain.width = shown.width;
  plain.height = shown.height;
  const ctx = plain.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(document.getElementById("preprocessed-canvas"), 0, 0, plain.width, plain.height);
  const a = shown.getContext("2d").getImageData(0, 0, shown.width, shown.height).data;
  const b = ctx.getImageData(0, 0, plain.width, plain.height).data;
  const sums = Array.from({ length: h }, () => new Array(w).fill(0));
  const counts = Array.from({ length: h }, () => new Array(w).fill(0));
  for (let y = 0; y < shown.height; y++) {
    for (let x = 0; x < shown.width; x++) {
      const o = 4 * (y * shown.width + x);
      const r = Math.floor((y * h) / shown.height), c = Math.floor((x * w) / shown.width);
      for (let k = 0; k < 3; k++) sums[r][c] += Math.abs(a[o + k] - b[o + k]);
      counts[r][c] += 1;
    }
  }
  return sums.map((row, r) => row.map((s, c) => s / counts[r][c]));
}"""


def test_why_view_shows_a_map_for_the_clicked_class(viewer: Viewer, tmp_path: Path) -> None:  # noqa: F811
    viewer.open("?model=cifar10")
    image = tmp_path / "wide.png"
    image.write_bytes(_png((60, 40)))
    viewer.page.set_input_files("#file-input", str(image))
    run_id = viewer.wait_for_run("cifar10")
    page = viewer.page
    body = page.locator("body")

    # The top class is explained at once, by Grad-CAM on its default layer.
    expect(page.locator("#why")).to_be_visible()
    expect(body).to_have_attribute("data-why", "shown")
    expect(page.locator("#score-bars .score.top")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#why-meaning")).to_contain_text("pool3 (4×4)")
    expect(page.locator("#why-layer")).to_have_value("14")
    answer = httpx.get(
        f"{viewer.base_url}/api/runs/{run_id}/attributions/gradcam.json", timeout=30
    ).json()
    cells = page.evaluate(CELL_DIFFERENCES, answer["shape"])
    values = answer["values"]
    flat = [(v, r, c) for r, row in enumerate(values) for c, v in enumerate(row)]
    _, r_hi, c_hi = max(flat)
    _, r_lo, c_lo = min(flat)
    assert cells[r_hi][c_hi] > cells[r_lo][c_lo] + 5  # the map is drawn where it is strong

    # The photo: 60x40, so the crop the network saw is its centre 40x40.
    size = page.evaluate(
        "(() => { const c = document.getElementById('why-photo');"
        " return [c.clientWidth, c.clientHeight]; })()"
    )
    assert size == [128, 85]

    # Click another class: its map, its name.
    dog = page.locator("#score-bars .score").nth(5)
    dog.click()
    expect(dog).to_have_attribute("aria-selected", "true")
    expect(page.locator("#why-class")).to_have_text("dog")
    expect(page.locator("#why-meaning")).to_contain_text("“dog”")

    # Another layer, then another method with its own parameter.
    page.select_option("#why-layer", "9")
    expect(page.locator("#why-meaning")).to_contain_text("pool2 (8×8)")
    page.select_option("#why-method", "integrated-gradients")
    page.select_option("#why-steps", "8")
    expect(page.locator("#why-status")).to_contain_text("completeness gap")
    expect(body).to_have_attribute("data-why", "shown")
    asked = [u for u in viewer.requests if "/attributions/" in u]
    assert any("gradcam.json?target=5&layer=9" in u for u in asked)
    assert any("integrated-gradients.json?target=5&steps=8" in u for u in asked)
    expect(page.locator("#why-colorbar .colorbar-zero")).to_have_text("0")  # signed map
