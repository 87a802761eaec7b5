"""Ship the page with the package: templates/ and static/ live at the top of the repository
(docs/architecture.md), and a wheel installs them as app/templates and app/static.
app/paths.py finds them in either place. Everything else is declared in pyproject.toml."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
PAGE_DIRS = ("templates", "static")


class BuildPyWithPage(build_py):
    def run(self) -> None:
        super().run()
        # An editable install runs from the checkout, where app/paths.py finds the originals.
        if self.editable_mode:
            return
        for name in PAGE_DIRS:
            if (ROOT / name).is_dir():
                shutil.copytree(
                    ROOT / name,
                    Path(self.build_lib, "app", name),
                    ignore=shutil.ignore_patterns("__pycache__", ".*"),
                    dirs_exist_ok=True,
                )


setup(cmdclass={"build_py": BuildPyWithPage})
