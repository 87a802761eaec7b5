"""The models directory: networks brought in by `convscope import`, served beside the
shipped ones.

Each model is two files, as ConvScope stores its own: ID.npz (weights in PyTorch's
layout, no pickle) and ID.json (its card: the spec, the source file, the import date,
classes, input size, accuracy once `convscope eval` measured it). Both are written under
temporary names in the same folder and renamed into place, the weights first and the card
last: a card is the sign that a model is complete, so a reader never meets a half-written
one, and an import that fails leaves the folder as it was. A card that cannot be read, or
whose weights are missing or do not match it, is skipped with a warning, so one broken
file never stops the server.

The folder is CONVSCOPE_MODELS_DIR, by default $XDG_DATA_HOME/convscope/models
(~/.local/share/convscope/models).
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

import model
from app.registry import ServedModel

log = logging.getLogger(__name__)

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


def check_id(model_id: str) -> None:
    """ValueError unless model_id can name an imported model."""
    if not ID_PATTERN.match(model_id):
        raise ValueError(
            f"the id {model_id!r} must be 1 to 40 lower-case letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    if model_id in model.shipped_models():
        raise ValueError(f"{model_id!r} is a shipped model's id; choose another")


def _write_atomically(path: Path, write) -> None:
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        os.chmod(partial, 0o644)  # mkstemp's 0600 would hide the model from a server user
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def write_model(models_dir: Path, model_id: str, net: model.Network, card: dict[str, Any]) -> Path:
    """Write ID.npz then ID.json into models_dir, each atomically; the card's path."""
    check_id(model_id)
    models_dir.mkdir(parents=True, exist_ok=True)
    weights, card_path = models_dir / f"{model_id}.npz", models_dir / f"{model_id}.json"
    _write_atomically(weights, lambda file: np.savez(file, **net.state_dict()))
    document = {**card, "spec": net.spec}
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    _write_atomically(card_path, lambda file: file.write(text.encode()))
    return card_path


def read_model(models_dir: Path, model_id: str) -> ServedModel:
    """One imported model; FileNotFoundError if absent, ValueError if it does not load."""
    card_path = models_dir / f"{model_id}.json"
    try:
        net = model.load(card_path)
    except FileNotFoundError:
        raise
    except Exception as error:  # a broken file, whatever its fault, is one model skipped
        raise ValueError(f"{card_path.name} does not load: {error}") from None
    return ServedModel(model_id, net, trained=True, digits=net.input_style == "digits")


def load_imported(
    models_dir: Path, skip: tuple[str, ...] | list[str] = ()
) -> dict[str, ServedModel]:
    """Every model in models_dir that loads, by id (sorted); the others are logged."""
    served: dict[str, ServedModel] = {}
    if not models_dir.is_dir():
        return served
    for card_path in sorted(models_dir.glob("*.json")):
        model_id = card_path.stem
        if model_id in skip or not ID_PATTERN.match(model_id):
            log.warning("models dir: %s skipped (its id is taken or not valid)", card_path.name)
            continue
        try:
            served[model_id] = read_model(models_dir, model_id)
        except (FileNotFoundError, ValueError) as error:
            log.warning("models dir: %s skipped: %s", card_path.name, error)
    return served


def find(model_id: str, models_dir: Path | None = None) -> ServedModel | None:
    """The imported model model_id, or None (for the CLI commands that take --model)."""
    from app.settings import Settings

    directory = models_dir or Settings().models_dir
    if not ID_PATTERN.match(model_id) or not (directory / f"{model_id}.json").exists():
        return None
    return read_model(directory, model_id)


def record_accuracy(model_id: str, result: dict[str, Any], data: str) -> Path | None:
    """Put `convscope eval`'s accuracy into an imported model's card; None for other ids."""
    from app.settings import Settings

    directory = Settings().models_dir
    card_path = directory / f"{model_id}.json"
    if model_id in model.shipped_models() or not card_path.exists():
        return None
    card = json.loads(card_path.read_text())
    card["test_accuracy"] = result["accuracy"]
    card["evaluation"] = {
        "accuracy": result["accuracy"],
        "count": result["count"],
        "dataset": Path(data).name,
        "date": now(),
    }
    text = json.dumps(card, indent=2) + "\n"
    _write_atomically(card_path, lambda file: file.write(text.encode()))
    return card_path


def now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()
