"""A ConvNet as a list of layers, built from a declarative spec.

A spec is plain JSON (see model/specs/):

    {"name": "cifar10", "input": [32, 32, 3], "classes": [...],
     "normalization": {"mean": [...], "std": [...]},
     "layers": [{"kind": "conv", "filters": 32, "size": 3, "pad": 1}, {"kind": "relu"}, ...]}

Layer names default to kind + counter (conv1, relu1, pool1, fc1, softmax1).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from model import extra_layers  # noqa: F401  (registers conv2d, batchnorm, ... in LAYER_KINDS)
from model.layers import (
    LAYER_KINDS,
    Conv,
    ConvReLU,
    Layer,
    MaxPool,
    ReceptiveField,
    ReLU,
    Shape,
    Softmax,
    softmax,
    softmax_cross_entropy,
)


class Network:
    """Layers in order, plus what the model knows about its input and classes."""

    def __init__(self, spec: dict[str, Any], dtype: np.dtype | type = np.float32):
        self.spec = spec
        self.name: str = spec.get("name", "model")
        self.input_shape: Shape = tuple(spec["input"])
        # How a viewer should turn an arbitrary picture into an input: "photo" (crop and
        # resize) or "digits" (MNIST-like: grey, light on dark, centred by mass).
        self.input_style: str = spec.get("input_style", "photo")
        self.classes: list[str] = list(spec.get("classes", []))
        self.normalization: dict[str, list[float]] = spec.get(
            "normalization",
            {"mean": [0.0] * self.input_shape[2], "std": [1.0] * self.input_shape[2]},
        )
        self.dtype = np.dtype(dtype)
        self.card: dict[str, Any] = {}
        self.layers: list[Layer] = _build_layers(spec["layers"], self.input_shape)
        self._receptive_fields = _receptive_fields(self.layers)
        if self.classes and self.layers[-1].output_shape[2] != len(self.classes):
            raise ValueError(
                f"the last layer has depth {self.layers[-1].output_shape[2]} "
                f"but the spec names {len(self.classes)} classes"
            )

    # --- what the page and the API show -------------------------------------------------

    def receptive_field(self, index: int) -> ReceptiveField:
        return self._receptive_fields[index]

    def describe(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per layer: index, name, kind, shape, params, receptive field."""
        return [
            {
                **layer.config(),
                "index": i,
                "shape": list(layer.output_shape),
                "param_count": layer.param_count,
                "receptive_field": vars(self._receptive_fields[i]),
                "summary": repr(layer),
            }
            for i, layer in enumerate(self.layers)
        ]

    @property
    def param_count(self) -> int:
        return sum(layer.param_count for layer in self.layers)

    def __repr__(self) -> str:
        h, w, d = self.input_shape
        lines = [f"INPUT {h}x{w}x{d}"] + [repr(layer) for layer in self.layers]
        return f"{self.name}: " + "\n  ".join(lines)

    # --- inference -----------------------------------------------------------------------

    def preprocess(self, images: np.ndarray) -> np.ndarray:
        """uint8 pixels (N, H, W, D) on the 0-255 scale -> normalised float input."""
        mean = np.asarray(self.normalization["mean"], self.dtype)
        std = np.asarray(self.normalization["std"], self.dtype)
        return (images.astype(self.dtype) - mean) / std

    def check_input(self, x: Any) -> np.ndarray:
        """x as a valid input batch, or a ValueError that says what was expected."""
        expected = f"a batch of shape (N, {', '.join(map(str, self.input_shape))}) {self.dtype}"
        if not isinstance(x, np.ndarray):
            raise ValueError(f"{self.name} expects {expected} NumPy array, got {type(x).__name__}")
        if x.ndim != 4:
            raise ValueError(f"{self.name} expects {expected}, got rank {x.ndim} {x.shape}")
        if tuple(x.shape[1:]) != self.input_shape or x.shape[0] < 1:
            raise ValueError(f"{self.name} expects {expected}, got shape {x.shape}")
        if x.dtype != self.dtype:
            raise ValueError(f"{self.name} expects {expected}, got dtype {x.dtype}")
        if not np.isfinite(x).all():
            raise ValueError(f"{self.name} expects finite values, got NaN or infinity")
        return x

    def forward_iter(self, x: np.ndarray) -> Iterator[tuple[Layer, np.ndarray]]:
        """Yield (layer, volume) for each layer as soon as it is computed."""
        x = self.check_input(x)
        for layer in self.layers:
            x = layer.forward(x)
            yield layer, x

    def forward(self, x: np.ndarray) -> list[np.ndarray]:
        """Every layer's volume (N, H, W, D), in order."""
        return [volume for _, volume in self.forward_iter(x)]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (N, classes)."""
        x = self.check_input(x)
        for layer in self.layers:
            x = layer.forward(x)
        scores = x.reshape(x.shape[0], -1)
        return scores if isinstance(self.layers[-1], Softmax) else softmax(scores)

    def probabilities(self, last: np.ndarray) -> np.ndarray:
        """Class probabilities, float64, from the last layer's output: one volume (H, W, D)
        gives (classes,), a batch (N, H, W, D) gives (N, classes). Each row sums to 1: the
        softmax of the scores, or a final softmax layer's output renormalised in float64."""
        scores = last.reshape(len(last), -1) if last.ndim == 4 else last.reshape(-1)
        scores = scores.astype(np.float64)
        if isinstance(self.layers[-1], Softmax):
            return scores / scores.sum(axis=-1, keepdims=True)
        return softmax(scores)

    # --- training ------------------------------------------------------------------------

    def loss(
        self, x: np.ndarray, labels: np.ndarray, smoothing: float = 0.0
    ) -> tuple[float, dict[str, np.ndarray]]:
        """Softmax cross-entropy on the scores and its gradient for every parameter.

        A final softmax layer is folded into the loss, which is both faster and more exact.
        Gradients come back as {"layer.param": array}, like state_dict().
        """
        loss, grads, _ = self.loss_and_scores(x, labels, smoothing)
        return loss, grads

    def loss_and_scores(
        self, x: np.ndarray, labels: np.ndarray, smoothing: float = 0.0
    ) -> tuple[float, dict[str, np.ndarray], np.ndarray]:
        """loss() plus the class scores (N, classes) it computed on the way; smoothing is
        the label smoothing of the cross-entropy (0 = plain one-hot targets)."""
        layers = self.layers[:-1] if isinstance(self.layers[-1], Softmax) else self.layers
        steps = _training_steps(layers)
        caches = []
        for step in steps:
            x, cache = step.forward_train(x)
            caches.append(cache)
        scores = x.reshape(len(x), -1)
        loss, dout = softmax_cross_entropy(x, labels, smoothing)
        grads: dict[str, np.ndarray] = {}
        for i in range(len(steps) - 1, -1, -1):
            step = steps[i]
            if i == 0 and isinstance(step, (Conv, ConvReLU)):
                # Nobody needs the gradient for the input image: skip the col2im.
                _, step_grads = step.backward(dout, caches[i], need_dx=False)
            else:
                dout, step_grads = step.backward(dout, caches[i])
            for key, grad in step_grads.items():
                grads[f"{step.name}.{key}"] = grad
        return loss, grads, scores

    # --- weights -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, np.ndarray]:
        """Every parameter as {"layer.param": array}, PyTorch's layout."""
        return {
            f"{layer.name}.{key}": value
            for layer in self.layers
            for key, value in layer.params.items()
        }

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy weights in, checking that names and shapes match the layers exactly."""
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise ValueError(
                f"weights do not match {self.name}: missing {missing or 'nothing'}, "
                f"unexpected {unexpected or 'nothing'}"
            )
        for key, target in own.items():
            value = np.asarray(state[key])
            if value.shape != target.shape:
                layer = key.split(".")[0]
                raise ValueError(
                    f"layer {layer}: {key} has shape {value.shape}, expected {target.shape}"
                )
            target[...] = value

    def astype(self, dtype: np.dtype | type) -> Network:
        """A copy computing in another dtype (float64 for gradient checks)."""
        other = Network(self.spec, dtype)
        for key, value in self.state_dict().items():
            layer, param = key.split(".")
            other._layer(layer).params[param] = value.astype(dtype)
        other.card = dict(self.card)
        return other

    def init_weights(self, seed: int | np.random.Generator = 0) -> Network:
        """He initialisation (normal, std sqrt(2 / fan_in)), zero biases."""
        rng = np.random.default_rng(seed)
        for layer in self.layers:
            for key, value in layer.params.items():
                if key == "weight":
                    fan_in = int(np.prod(value.shape[1:]))
                    value[...] = rng.standard_normal(value.shape) * np.sqrt(2.0 / fan_in)
                else:
                    value[...] = 0
        return self

    def _layer(self, name: str) -> Layer:
        return next(layer for layer in self.layers if layer.name == name)


def _build_layers(definitions: list[dict[str, Any]], input_shape: Shape) -> list[Layer]:
    layers: list[Layer] = []
    counts: dict[str, int] = {}
    shape = input_shape
    for definition in definitions:
        options = dict(definition)
        kind = options.pop("kind", None)
        if kind not in LAYER_KINDS:
            raise ValueError(f"unknown layer kind {kind!r}; known: {', '.join(LAYER_KINDS)}")
        counts[kind] = counts.get(kind, 0) + 1
        name = options.pop("name", f"{kind}{counts[kind]}")
        if any(layer.name == name for layer in layers) or "." in name:
            raise ValueError(f"layer name {name!r} is repeated or contains a dot")
        try:
            layer = LAYER_KINDS[kind](name, shape, **options)
        except TypeError as error:
            raise ValueError(f"layer {name}: bad options {options}: {error}") from None
        layers.append(layer)
        shape = layer.output_shape
    if not layers:
        raise ValueError("a network needs at least one layer")
    return layers


def _training_steps(layers: list[Layer]) -> list[Layer | ConvReLU]:
    """The layers as the training step computes them: a Conv, the ReLU after it and a max
    pool after that, if any, as one ConvReLU (the same numbers, fewer passes over memory).
    Exact types only: a subclass may compute otherwise."""
    steps: list[Layer | ConvReLU] = []
    for layer in layers:
        last = steps[-1] if steps else None
        if type(layer) is ReLU and type(last) is Conv:
            steps[-1] = ConvReLU(last, layer)
        elif type(layer) is MaxPool and type(last) is ConvReLU and last.pool is None:
            steps[-1] = ConvReLU(last.conv, last.relu, layer)
        else:
            steps.append(layer)
    return steps


def _receptive_fields(layers: list[Layer]) -> list[ReceptiveField]:
    field = ReceptiveField(size=1, jump=1, start=0.0)
    fields = []
    for layer in layers:
        field = layer.receptive_field(field)
        fields.append(field)
    return fields
