"""The wheel, built and installed the way the Dockerfile does it, works outside the repository.

The Docker build context (what .dockerignore lets through) is copied, a wheel built from it
with --no-deps and installed with --no-deps into a fresh virtualenv, which borrows this
environment's dependencies through a .pth file instead of downloading them again.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow  # builds and installs a wheel, starts servers

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()
PROBE = "packaging-probe.txt"


@dataclass
class Installed:
    source: Path  # the copied build context
    python: Path
    scripts: Path
    site_packages: Path
    outside: Path  # a working directory with no `app` package in it
    env: dict[str, str]

    def run(self, *command: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, cwd=self.outside, env=self.env, capture_output=True, text=True, timeout=60
        )


def docker_context() -> list[str]:
    """The top-level names .dockerignore lets into the build."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line[1:].rstrip("/") for line in lines if line.startswith("!")]


def pip(*args: str | Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], check=True)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("packaging")
    source = tmp / "src"
    source.mkdir()
    for name in docker_context():
        path = ROOT / name
        if path.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.py[co]")
            shutil.copytree(path, source / name, ignore=ignore)
        elif path.exists():
            shutil.copy2(path, source / name)
    # A file of our own, so the test does not depend on what the page ships today.
    (source / "static").mkdir(exist_ok=True)
    (source / "static" / PROBE).write_text("shipped\n")

    # The Dockerfile's two steps: build the wheel, install it without dependencies.
    pip(
        "wheel",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--wheel-dir",
        tmp / "wheels",
        source,
    )
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    (wheel,) = (tmp / "wheels").glob("convscope-*.whl")
    pip("--python", python, "install", "--quiet", "--no-deps", "--no-cache-dir", wheel)

    site_packages = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], text=True
        ).strip()
    )
    # Borrow the dependencies; a path line in a .pth is not processed as a site directory,
    # so this environment's editable install of convscope stays out.
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (site_packages / "borrowed-dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")

    outside = tmp / "outside"
    outside.mkdir()
    env = {
        k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("CONVSCOPE_")
    }
    return Installed(source, python, venv / "bin", site_packages, outside, env)


def test_entry_points_run_from_the_installed_package(installed: Installed) -> None:
    for command in (
        [installed.scripts / "convscope", "--help"],
        [installed.python, "-m", "app", "--help"],
    ):
        result = installed.run(*command)
        assert result.returncode == 0, result.stderr
        assert "serve" in result.stdout
    where = installed.run(installed.python, "-c", "import app; print(app.__file__)")
    assert Path(where.stdout.strip()).is_relative_to(installed.site_packages)


def test_page_and_model_files_ship_in_the_wheel(installed: Installed) -> None:
    app_dir = installed.site_packages / "app"
    result = installed.run(
        installed.python,
        "-c",
        "from app.paths import STATIC_DIR, TEMPLATES_DIR; print(STATIC_DIR); print(TEMPLATES_DIR)",
    )
    assert result.stdout.split() == [str(app_dir / "static"), str(app_dir / "templates")]

    shipped = {
        "templates": app_dir / "templates",
        "static": app_dir / "static",
        "app": app_dir,
        "model": installed.site_packages / "model",
    }
    for name, target in shipped.items():
        for path in (installed.source / name).rglob("*"):
            if path.is_file():
                relative = path.relative_to(installed.source / name)
                assert (target / relative).is_file(), f"{name}/{relative} is not in the wheel"


def dockerfile_json(instruction: str) -> list[str]:
    """The exec-form arguments ([...]) of the Dockerfile's `instruction` line."""
    lines = DOCKERFILE.replace("\\\n", " ").splitlines()
    (line,) = [line for line in lines if line.startswith(f"{instruction} ")]
    return json.loads(line[line.index("[") :])


def test_the_image_command_serves_the_page_files_and_passes_its_healthcheck(
    installed: Installed, run_server: Callable
) -> None:
    command = dockerfile_json("CMD")
    assert command[:2] == ["convscope", "serve"]
    # Listen on loopback only; argparse keeps the last --host.
    server = [installed.scripts / command[0], *command[1:], "--host", "127.0.0.1"]
    with run_server(server, cwd=installed.outside, env=installed.env) as base_url:
        response = httpx.get(f"{base_url}/static/{PROBE}", timeout=5)
        assert response.status_code == 200
        assert response.text == "shipped\n"

        healthcheck = dockerfile_json("HEALTHCHECK")
        assert healthcheck[0] == "python"
        port = base_url.rsplit(":", 1)[1]
        env = {**installed.env, "CONVSCOPE_PORT": port}
        result = subprocess.run(
            [installed.python, *healthcheck[1:]], cwd=installed.outside, env=env, timeout=30
        )
        assert result.returncode == 0
