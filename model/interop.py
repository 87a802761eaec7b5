"""Moving weights between ConvScope and a PyTorch nn.Sequential of the same layers.

ConvScope names parameters by layer ("conv1.weight"); an nn.Sequential names them by
module index ("0.weight"). The arrays themselves are already in PyTorch's layout, so
converting is only renaming, in order. This module never imports torch.
"""

from __future__ import annotations

import numpy as np

from model.layers import Layer
from model.network import Network


def torch_source(net: Network) -> str:
    """Python source for the equivalent nn.Sequential (FC layers get an nn.Flatten first)."""
    body = "".join(f"    {module},\n" for module, _ in _sequential(net))
    return f"nn.Sequential(\n{body})"


def _sequential(net: Network) -> list[tuple[str, Layer | None]]:
    """The nn.Sequential's modules in order, each with the layer whose parameters it holds
    (None for the modules with none: an activation, a pool, a Flatten, a padding).

    Asymmetric padding, which PyTorch's Conv2d and pools do not take, becomes a padding
    module in front (ZeroPad2d, or ConstantPad2d(-inf) before a max pool). A ceil_mode max
    pool behind one may then keep a last window that starts in the bottom or right padding,
    which the layer drops; an average pool with asymmetric padding that does not count it
    has no PyTorch module, and is refused.
    """
    modules: list[tuple[str, Layer | None]] = []
    for layer in net.layers:
        kind = layer.kind
        if kind == "conv":
            c = layer.input_shape[2]
            size, stride, pad = layer.size, layer.stride, layer.pad
            source = f"nn.Conv2d({c}, {layer.filters}, {size}, stride={stride}, padding={pad})"
            modules.append((source, layer))
        elif kind == "conv2d":
            padding = _padding(layer, modules, "nn.ZeroPad2d({})")
            c, groups = layer.input_shape[2], layer.groups
            extra = f", groups={groups}" if groups != 1 else ""
            modules.append(
                (
                    f"nn.Conv2d({c}, {layer.filters}, {_tuple(layer.kernel)},"
                    f" stride={_tuple(layer.stride)}, padding={padding},"
                    f" dilation={_tuple(layer.dilation)}{extra})",
                    layer,
                )
            )
        elif kind in ("maxpool", "avgpool"):
            if kind == "maxpool":
                padding = _padding(layer, modules, 'nn.ConstantPad2d({}, float("-inf"))')
                extra = ""
            else:
                if not layer.count_include_pad and _asymmetric(layer):
                    raise ValueError(
                        f"{layer.name}: an average pool with asymmetric padding {list(layer.pads)} "
                        "that does not count the padding has no PyTorch module"
                    )
                padding = _padding(layer, modules, "nn.ZeroPad2d({})")
                extra = f", count_include_pad={layer.count_include_pad}"
            name = "MaxPool2d" if kind == "maxpool" else "AvgPool2d"
            modules.append(
                (
                    f"nn.{name}({_tuple(layer.kernel)}, stride={_tuple(layer.stride)},"
                    f" padding={padding}, ceil_mode={layer.ceil_mode}{extra})",
                    None,
                )
            )
        elif kind == "pool":
            modules.append((f"nn.MaxPool2d({layer.size}, stride={layer.stride})", None))
        elif kind == "fc":
            modules.append(("nn.Flatten()", None))
            modules.append((f"nn.Linear({layer.params['weight'].shape[1]}, {layer.units})", layer))
        elif kind == "batchnorm":
            modules.append((f"nn.BatchNorm2d({layer.input_shape[2]}, eps={layer.eps!r})", layer))
        elif kind == "leakyrelu":
            modules.append((f"nn.LeakyReLU({layer.alpha!r})", None))
        elif kind in PLAIN_MODULES:
            modules.append((PLAIN_MODULES[kind], None))
        else:
            raise ValueError(f"{layer.name}: a {kind} layer has no PyTorch module here")
    return modules


# Layers whose module has no parameters and no settings beyond its name.
PLAIN_MODULES = {
    "relu": "nn.ReLU()",
    "softmax": "nn.Softmax(dim=1)",
    "gap": "nn.AdaptiveAvgPool2d(1)",
    "sigmoid": "nn.Sigmoid()",
    "tanh": "nn.Tanh()",
    "flatten": "nn.Flatten()",
    "logsoftmax": "nn.LogSoftmax(dim=1)",
}


def _tuple(pair: tuple[int, int]) -> str:
    a, b = pair
    return str(a) if a == b else f"({a}, {b})"


def _asymmetric(layer: Layer) -> bool:
    top, left, bottom, right = layer.pads
    return (top, left) != (bottom, right)


def _padding(layer: Layer, modules: list, pad_module: str) -> str:
    """The padding argument of a conv2d's or pool's module: (rows, cols) where the padding is
    symmetric, else 0 with `pad_module` (given PyTorch's (left, right, top, bottom)) in front."""
    top, left, bottom, right = layer.pads
    if not _asymmetric(layer):
        return _tuple((top, left))
    modules.append((pad_module.format(f"({left}, {right}, {top}, {bottom})"), None))
    return "0"


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
    """net's weights keyed like the state_dict of torch_source(net)'s nn.Sequential (a
    BatchNorm2d's num_batches_tracked too, so that a strict load_state_dict takes it)."""
    renamed = {}
    for index, (_, layer) in enumerate(_sequential(net)):
        if layer is None:
            continue
        for param, value in layer.params.items():
            renamed[f"{index}.{param}"] = value
        if layer.kind == "batchnorm":
            renamed[f"{index}.num_batches_tracked"] = np.array(0, np.int64)
    return renamed
