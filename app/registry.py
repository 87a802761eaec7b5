"""The models this server serves, loaded once per process by the app's lifespan.

A model whose trained weights are not there yet is served freshly initialised and marked
untrained, so the viewer works (and shows what an untrained network does) before training.
"""

from __future__ import annotations

import logging
import math
import weakref
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

import model

log = logging.getLogger(__name__)

# A network's weights digest, worked out once per network object (the compute pool and the
# channel views both need it); gone with the network.
_DIGESTS: weakref.WeakKeyDictionary[model.Network, str] = weakref.WeakKeyDictionary()


def weights_digest(network: model.Network) -> str:
    """The sha256 over a served network's weights (model.channels.weights_sha256)."""
    if (digest := _DIGESTS.get(network)) is None:
        from model.channels import weights_sha256

        digest = _DIGESTS[network] = weights_sha256(network)
    return digest


@dataclass
class ServedModel:
    id: str
    network: model.Network
    trained: bool
    digits: bool

    @property
    def volume_bytes(self) -> int:
        """The bytes of one run's volumes, every layer's."""
        net = self.network
        return sum(math.prod(layer.output_shape) for layer in net.layers) * net.dtype.itemsize

    @property
    def description(self) -> str:
        return self.network.spec.get("description", "")

    @property
    def tagline(self) -> str:
        """One line on what the model is, for the page's model picker. Weights trained before
        specs had a tagline carry an older spec in their card: the package's spec has it."""
        spec = self.network.spec
        if "tagline" not in spec and self.id in model.shipped_models():
            spec = model.read_spec(self.id)
        return spec.get("tagline", self.description)

    @property
    def test_accuracy(self) -> float | None:
        return self.network.card.get("test_accuracy")

    def training(self) -> dict[str, Any] | None:
        """How the weights were made, from the model card; None for untrained weights."""
        card = self.network.card
        if not self.trained or "history" not in card:
            return None
        return {
            "command": card.get("command"),
            "dataset": card.get("dataset", {}).get("name"),
            "epochs": card.get("epochs"),
            "history": [
                {key: epoch[key] for key in ("epoch", "loss", "train_accuracy", "test_accuracy")}
                for epoch in card["history"]
            ],
        }

    def summary(self) -> dict[str, Any]:
        """What GET /api/models says about this model."""
        net = self.network
        return {
            "id": self.id,
            "name": net.name,
            "description": self.description,
            "tagline": self.tagline,
            "trained": self.trained,
            "training": self.training(),
            "test_accuracy": self.test_accuracy,
            "input": list(net.input_shape),
            "input_style": net.input_style,
            "classes": net.classes,
            "normalization": net.normalization,
            "source": net.card.get("source"),
            "layers": net.describe(),
        }


def load_model(model_id: str) -> ServedModel:
    """The shipped model `model_id`, trained if its weights exist, or an imported one (in
    CONVSCOPE_MODELS_DIR); ValueError if unknown."""
    if model_id not in model.shipped_models():
        from app.models_dir import find

        if (imported := find(model_id)) is not None:
            return imported
    try:
        network, trained = model.load(model_id), True
    except FileNotFoundError:
        log.warning("no trained weights for %s yet: serving it untrained", model_id)
        network, trained = model.build(model_id), False
    # The spec says whether uploads are made to look like MNIST digits or cropped photos.
    return ServedModel(model_id, network, trained, digits=network.input_style == "digits")


class UnknownModel(LookupError):
    pass


class Registry:
    def __init__(self, models: dict[str, ServedModel]):
        self.models = models

    @classmethod
    def load(cls, model_ids: tuple[str, ...] | list[str]) -> Registry:
        return cls({model_id: load_model(model_id) for model_id in model_ids})

    def get(self, model_id: str) -> ServedModel:
        """The model, or UnknownModel with a sentence naming the ones served."""
        try:
            return self.models[model_id]
        except KeyError:
            known = ", ".join(self.models) or "none"
            detail = f"There is no model {model_id!r}; this server has {known}."
            raise UnknownModel(detail) from None


async def get_registry(request: Request) -> Registry:
    return request.app.state.registry


RegistryDep = Annotated[Registry, Depends(get_registry)]
