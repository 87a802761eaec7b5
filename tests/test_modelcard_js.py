"""static/js/modelcard.js's unit tests (tests/js/*.test.mjs) under node's own test runner."""

import shutil
import subprocess
from pathlib import Path

import pytest

JS_TESTS = Path(__file__).parent / "js" / "modelcard.test.mjs"


@pytest.mark.slow
def test_modelcard_js_units_pass() -> None:
    node = shutil.which("node")
    if not node:
        pytest.skip("node is not installed")
    result = subprocess.run(
        [node, "--test", str(JS_TESTS)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
