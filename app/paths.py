"""Where the page's files are.

A wheel installs templates/ and static/ inside the package (app/templates, app/static: see
the force-include in pyproject.toml); a source checkout or an editable install keeps them at
the top of the repository.
"""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    installed, checkout = PACKAGE_DIR / name, PACKAGE_DIR.parent / name
    return checkout if not installed.is_dir() and checkout.is_dir() else installed


TEMPLATES_DIR = _find("templates")
STATIC_DIR = _find("static")
