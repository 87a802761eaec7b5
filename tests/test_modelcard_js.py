"""The page's pure functions (tests/js/*.test.mjs: static/js/modelcard.js, api.js's
parseNpy) under node's own test runner, with a .npy file numpy wrote."""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

# split.test.mjs and predict.test.mjs need the server's own encoding as their fixture:
# tests/api/test_wire.py runs them.
JS_TESTS = sorted(
    path
    for path in (Path(__file__).parent / "js").glob("*.test.mjs")
    if path.name not in ("split.test.mjs", "predict.test.mjs")
)


@pytest.mark.slow
def test_page_js_units_pass(tmp_path: Path) -> None:
    node = shutil.which("node")
    if not node:
        pytest.skip("node is not installed")
    fixture = tmp_path / "volume.npy"
    np.save(fixture, np.arange(30, dtype=np.float32).reshape(3, 5, 2) / np.float32(7))
    result = subprocess.run(
        [node, "--test", *map(str, JS_TESTS)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NPY_FIXTURE": str(fixture)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# fail 0" in result.stdout and "# skipped 0" in result.stdout
