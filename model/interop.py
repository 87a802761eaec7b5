"""Moving weights between ConvScope and a PyTorch nn.Sequential of the same layers.

ConvScope names parameters by layer ("conv1.weight"); an nn.Sequential names them by
module index ("0.weight"). The arrays themselves are already in PyTorch's layout, so
converting is only renaming, in order. This module never imports torch.
"""

from __future__ import annotations

import numpy as np

from model.network import Network


def torch_source(net: Network) -> str:
    """Python source for the equivalent nn.Sequential (FC layers get an nn.Flatten first)."""
    modules = []
    for layer in net.layers:
        if layer.kind == "conv":
            c = layer.input_shape[2]
            modules.append(
                f"nn.Conv2d({c}, {layer.filters}, {layer.size},"
                f" stride={layer.stride}, padding={layer.pad})"
            )
        elif layer.kind == "relu":
            modules.append("nn.ReLU()")
        elif layer.kind == "pool":
            modules.append(f"nn.MaxPool2d({layer.size}, stride={layer.stride})")
        elif layer.kind == "fc":
            modules += [
                "nn.Flatten()",
                f"nn.Linear({layer.params['weight'].shape[1]}, {layer.units})",
            ]
        elif layer.kind == "softmax":
            modules.append("nn.Softmax(dim=1)")
    body = "".join(f"    {module},\n" for module in modules)
    return f"nn.Sequential(\n{body})"


def _modules_in_order(keys) -> list[str]:
    prefixes: list[str] = []
    for key in keys:
        prefix = key.rsplit(".", 1)[0]
        if prefix not in prefixes:
            prefixes.append(prefix)
    return prefixes


def from_torch(net: Network, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A torch state_dict (as NumPy arrays, e.g. {k: v.numpy()}) renamed for net.

    Modules with parameters are matched to ConvScope layers with parameters, in order;
    load_state_dict then checks every shape.
    """
    layers = [layer for layer in net.layers if layer.params]
    modules = _modules_in_order(state)
    if len(modules) != len(layers):
        raise ValueError(
            f"the torch model has {len(modules)} modules with parameters, "
            f"{net.name} has {len(layers)} layers with parameters"
        )
    return {
        f"{layer.name}.{param}": np.asarray(state[f"{module}.{param}"], np.float32)
        for module, layer in zip(modules, layers, strict=True)
        for param in layer.params
    }


def to_torch(net: Network) -> dict[str, np.ndarray]:
    """net's weights keyed like the state_dict of torch_source(net)'s nn.Sequential."""
    index, renamed = 0, {}
    for layer in net.layers:
        if layer.kind == "fc":
            index += 1  # the nn.Flatten in front of it
        for param, value in layer.params.items():
            renamed[f"{index}.{param}"] = value
        index += 1
    return renamed
