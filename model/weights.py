"""Weights on disk: an .npz of arrays (no pickle) beside a JSON model card.

The card holds everything needed to rebuild the network (its spec) and what a reader
wants to know about how it was made (dataset, epochs, accuracy).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from model.network import Network

SPECS_DIR = Path(__file__).parent / "specs"
SHIPPED_DIR = Path(__file__).parent / "shipped"


def shipped_models() -> list[str]:
    """The ids of the models this package defines (a spec each)."""
    return sorted(path.stem for path in SPECS_DIR.glob("*.json"))


def read_spec(name_or_path: str | Path) -> dict[str, Any]:
    """A spec by shipped id (``cifar10``) or from a JSON file (a spec or a model card)."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SPECS_DIR / f"{name_or_path}.json"
        if not path.exists():
            raise ValueError(
                f"unknown model {name_or_path!r}; shipped: {', '.join(shipped_models())}"
            )
    document = json.loads(path.read_text())
    return document.get("spec", document)


def save(net: Network, path: str | Path, card: dict[str, Any] | None = None) -> Path:
    """Write PATH.npz and PATH.json (the card, which includes the spec). Returns the .npz."""
    path = Path(path).with_suffix("")
    path.parent.mkdir(parents=True, exist_ok=True)
    weights = path.with_suffix(".npz")
    # Write then rename, so a reader never sees a half-written file.
    partial = path.with_suffix(".partial.npz")
    np.savez(partial, **net.state_dict())
    partial.replace(weights)
    full_card = {**net.card, **(card or {}), "spec": net.spec}
    path.with_suffix(".json").write_text(json.dumps(full_card, indent=2) + "\n")
    return weights


def load_weights(net: Network, weights: str | Path) -> Network:
    """Load an .npz into net, checking every name and shape."""
    with np.load(weights, allow_pickle=False) as arrays:
        net.load_state_dict({key: arrays[key] for key in arrays.files})
    return net


def load(name_or_path: str | Path) -> Network:
    """A network with trained weights: a shipped id (``cifar10``) or a path to .npz/.json.

    Raises FileNotFoundError when the weights are not there (yet); ``build`` makes a
    freshly initialised network from the same spec.
    """
    path = Path(name_or_path)
    if not path.suffix:
        read_spec(name_or_path)  # an unknown id is a ValueError, not a missing file
        path = SHIPPED_DIR / f"{name_or_path}.npz"
    weights, card_path = path.with_suffix(".npz"), path.with_suffix(".json")
    if not weights.exists() or not card_path.exists():
        raise FileNotFoundError(f"no trained weights at {weights} (with its card {card_path.name})")
    card = json.loads(card_path.read_text())
    net = Network(card["spec"])
    net.card = {key: value for key, value in card.items() if key != "spec"}
    return load_weights(net, weights)


def build(name_or_spec: str | Path | dict[str, Any], seed: int = 0) -> Network:
    """A freshly He-initialised network from a shipped id, a spec file or a spec dict."""
    spec = name_or_spec if isinstance(name_or_spec, dict) else read_spec(name_or_spec)
    return Network(spec).init_weights(seed)
