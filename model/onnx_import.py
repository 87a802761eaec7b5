"""ONNX networks -> ConvScope layers: the graph is read, never run.

The `onnx` package parses the protobuf and infers shapes; the computation is ConvScope's
own NumPy layers (model/layers.py, model/extra_layers.py), so every view works on an
imported network as on a shipped one. What is imported is a chain: one image input
(NCHW, 1 or 3 channels, at most 224x224), each node feeding the next, ending in a vector
of class scores. Anything else is refused with an ImportRefused that names the operator,
the node and what is supported, before anything is written.

    imported = convert(read_onnx(path), fold_batchnorm=False)
    net = imported.network(classes=[...], normalization={...}, input_style="photo")

ONNX tensors are NCHW; ConvScope's volumes are (H, W, D). Weights need no change: Conv's
(F, C/groups, KH, KW) and Gemm's (out, in) with transB=1 are PyTorch's layouts already,
and ConvScope's fc flattens depth-major, exactly as ONNX Flatten does on NCHW.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from model.layers import LAYER_KINDS, Layer, Shape
from model.network import Network

MAX_SIDE = 224
CHANNELS = (1, 3)
ELEMENTWISE = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "LeakyRelu": "leakyrelu"}
DROPPED = {"Dropout", "Identity"}
SUPPORTED = (
    "Conv (groups 1 or depthwise), Gemm, MatMul (+ Add), Relu, LeakyRelu, Sigmoid, Tanh, "
    "MaxPool, AveragePool, GlobalAveragePool, BatchNormalization, Flatten, Reshape or Squeeze "
    "to a vector, Dropout, Identity, Softmax and LogSoftmax (last), Constant"
)
JOINS = {"Add", "Sum", "Concat", "Mul", "Sub", "Div", "Max", "Min", "Mean"}
# Layer names by family: conv2d layers are numbered with conv, maxpool with pool.
FAMILY = {"conv2d": "conv", "maxpool": "pool", "batchnorm": "bn"}


class ImportRefused(ValueError):
    """The file cannot be imported; the message says why, in a sentence."""


def read_onnx(data: bytes, source: str = "the file") -> Any:
    """Parse ONNX bytes (a ModelProto) and infer shapes; ImportRefused if it is not one."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        proto = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as error:
        raise ImportRefused(f"{source} is not an ONNX model ({error}).") from None
    if not proto.graph.node:
        raise ImportRefused(f"{source} holds no ONNX graph (no nodes).")
    try:
        return onnx.shape_inference.infer_shapes(proto, strict_mode=False)
    except Exception:  # shape inference is a help, not a requirement
        return proto


@dataclass
class Imported:
    """An ONNX chain as a ConvScope spec (layers, input) and a state dict."""

    input_shape: Shape
    output_depth: int
    layers: list[dict[str, Any]]
    state: dict[str, np.ndarray]
    nodes: dict[str, list[str]]  # layer name -> the ONNX nodes it came from
    producer: str = ""
    opset: int | None = None
    dropped: list[str] = field(default_factory=list)

    def network(
        self,
        *,
        name: str,
        classes: list[str],
        normalization: dict[str, list[float]],
        input_style: str,
        description: str = "",
    ) -> Network:
        spec = {
            "name": name,
            "description": description,
            "input_style": input_style,
            "input": list(self.input_shape),
            "classes": classes,
            "normalization": normalization,
            "layers": self.layers,
        }
        net = Network(spec)
        net.load_state_dict(self.state)
        return net


def _layer(definition: dict[str, Any], shape: Shape) -> Layer:
    options = dict(definition)
    kind, name = options.pop("kind"), options.pop("name")
    return LAYER_KINDS[kind](name, shape, **options)


def _attributes(node: Any) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _describe(node: Any) -> str:
    return f"node {node.name or node.output[0]!r} ({node.op_type})"


def _dims(value_info: Any) -> list[int | str]:
    tensor = value_info.type.tensor_type
    if not tensor.HasField("shape"):
        return []
    return [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim
    ]


class _Chain:
    """Walks the graph from its input to its output, one node at a time."""

    def __init__(self, proto: Any, fold_batchnorm: bool):
        from onnx import numpy_helper

        graph = proto.graph
        self.fold_batchnorm = fold_batchnorm
        self.consts: dict[str, np.ndarray] = {
            t.name: numpy_helper.to_array(t) for t in graph.initializer
        }
        self.nodes = []
        for node in graph.node:
            if node.op_type == "Constant":
                self.consts[node.output[0]] = self._constant(node)
            else:
                self.nodes.append(node)
        self.layers: list[dict[str, Any]] = []
        self.state: dict[str, np.ndarray] = {}
        self.sources: dict[str, list[str]] = {}
        self.dropped: list[str] = []
        self.counts: dict[str, int] = {}
        self.flat = False  # the ONNX tensor is (N, features): Flatten or Reshape seen
        self.finished_by: Any = None  # the Softmax / LogSoftmax that ended the chain

        inputs = [i for i in graph.input if i.name not in self.consts]
        if len(inputs) != 1:
            names = ", ".join(i.name for i in inputs) or "none"
            raise ImportRefused(
                f"The graph has {len(inputs)} inputs ({names}); ConvScope imports networks "
                "with one image input."
            )
        self.input_name = inputs[0].name
        self.input_shape = self._input_shape(inputs[0])
        self.shape: Shape = self.input_shape
        if len(graph.output) != 1:
            raise ImportRefused(
                f"The graph has {len(graph.output)} outputs; ConvScope imports networks with "
                "one output, the class scores."
            )
        self.output = graph.output[0]

    def _constant(self, node: Any) -> np.ndarray:
        from onnx import numpy_helper

        attributes = {a.name: a for a in node.attribute}
        if "value" in attributes:
            return numpy_helper.to_array(attributes["value"].t)
        values = _attributes(node)
        for key in ("value_float", "value_floats", "value_int", "value_ints"):
            if key in values:
                return np.asarray(values[key])
        raise ImportRefused(f"{_describe(node)} holds a kind of constant ConvScope cannot read.")

    def _input_shape(self, value_info: Any) -> Shape:
        dims = _dims(value_info)
        where = f"The input {value_info.name!r}"
        if len(dims) != 4:
            raise ImportRefused(
                f"{where} has shape {dims or 'unknown'}; ConvScope imports image classifiers "
                "with an NCHW input (batch, channels, height, width)."
            )
        _, c, h, w = dims
        if not all(isinstance(d, int) and d > 0 for d in (c, h, w)):
            raise ImportRefused(
                f"{where} has shape {dims}: channels, height and width must be fixed numbers "
                "(export with a fixed-size example input)."
            )
        if c not in CHANNELS or max(h, w) > MAX_SIDE:
            raise ImportRefused(
                f"{where} is {c}x{h}x{w} (channels x height x width); ConvScope imports inputs "
                f"of 1 or 3 channels, at most {MAX_SIDE}x{MAX_SIDE}."
            )
        return h, w, c

    # --- the walk ---------------------------------------------------------------------------

    def walk(self) -> None:
        consumers: dict[str, list[Any]] = {}
        for node in self.nodes:
            for name in node.input:
                if name and name not in self.consts:
                    consumers.setdefault(name, []).append(node)
        current = self.input_name
        while True:
            users = consumers.get(current, [])
            if current == self.output.name:
                if users:
                    raise ImportRefused(
                        f"The graph's output {current!r} also feeds {_describe(users[0])}; "
                        "ConvScope imports chains of layers only."
                    )
                return
            if not users:
                raise ImportRefused(
                    f"The tensor {current!r} leads nowhere: the chain from the input does not "
                    f"reach the output {self.output.name!r}."
                )
            if len(users) > 1:
                named = ", ".join(_describe(n) for n in users)
                raise ImportRefused(
                    f"The tensor {current!r} feeds {len(users)} nodes ({named}): the graph "
                    "branches (a residual connection or an Inception-style block), and "
                    "ConvScope imports chains of layers only; supported: " + SUPPORTED + "."
                )
            node = users[0]
            dynamic = [name for name in node.input if name and name not in self.consts]
            if len(dynamic) > 1 or node.op_type == "Concat":
                raise ImportRefused(
                    f"{_describe(node)} combines {len(dynamic)} tensors "
                    f"({', '.join(dynamic)}): a residual connection or a branch, and ConvScope "
                    "imports chains of layers only (no residual Add or Concat)."
                )
            if self.finished_by is not None:
                raise ImportRefused(
                    f"{_describe(node)} follows {_describe(self.finished_by)}; ConvScope "
                    "imports Softmax and LogSoftmax only as the last node."
                )
            handler = getattr(self, f"_on_{node.op_type}", None)
            if node.op_type in DROPPED:
                self.dropped.append(node.name or node.output[0])
            elif node.op_type in ELEMENTWISE:
                self._elementwise(node)
            elif handler is None:
                raise ImportRefused(
                    f"{_describe(node)} is an operator ConvScope does not import; "
                    f"supported: {SUPPORTED}."
                )
            else:
                handler(node)
            extra = [o for o in node.output[1:] if o and o in consumers]
            if extra:
                raise ImportRefused(
                    f"{_describe(node)}'s second output {extra[0]!r} is used; ConvScope "
                    "imports chains of layers only."
                )
            current = node.output[0]

    def _emit(self, node: Any, kind: str, options: dict[str, Any], params=None) -> None:
        family = FAMILY.get(kind, kind)
        self.counts[family] = self.counts.get(family, 0) + 1
        name = f"{family}{self.counts[family]}"
        definition = {"kind": kind, "name": name, **options}
        try:
            layer = _layer(definition, self.shape)
        except ValueError as error:
            raise ImportRefused(f"{_describe(node)}: {error}.") from None
        for key, value in (params or {}).items():
            expected = layer.params[key].shape
            value = np.asarray(value, np.float32)
            if value.shape != expected:
                raise ImportRefused(
                    f"{_describe(node)} has a {key} of shape {list(value.shape)}, where its "
                    f"input of {self._shape_text()} needs {list(expected)}."
                )
            self.state[f"{name}.{key}"] = value
        self.layers.append(definition)
        self.sources[name] = [node.name or node.output[0]]
        self.shape = layer.output_shape

    def _shape_text(self) -> str:
        h, w, d = self.shape
        return f"{d} features" if self.flat else f"{d}x{h}x{w} (CxHxW)"

    def _const_input(self, node: Any, index: int, what: str) -> np.ndarray | None:
        if len(node.input) <= index or not node.input[index]:
            return None
        name = node.input[index]
        if name not in self.consts:
            raise ImportRefused(
                f"{_describe(node)}: its {what} {name!r} is computed, not stored; ConvScope "
                "imports weights that are initialisers or Constant nodes."
            )
        return self.consts[name].astype(np.float32)

    def _need_volume(self, node: Any) -> None:
        if self.flat:
            raise ImportRefused(
                f"{_describe(node)} works on an image volume, but its input has already been "
                "flattened to a vector."
            )

    def _flatten_if_needed(self) -> None:
        """Before a layer that needs a vector (softmax), or at the end: make one."""
        h, w, _ = self.shape
        if (h, w) != (1, 1):
            self._emit_plain("flatten")

    def _emit_plain(self, kind: str) -> None:
        family = FAMILY.get(kind, kind)
        self.counts[family] = self.counts.get(family, 0) + 1
        name = f"{family}{self.counts[family]}"
        self.layers.append({"kind": kind, "name": name})
        self.sources[name] = []
        self.shape = _layer(self.layers[-1], self.shape).output_shape

    # --- geometry shared by Conv and the pools ---------------------------------------------

    def _window(self, node: Any, kernel: list[int]) -> dict[str, Any]:
        a = _attributes(node)
        strides = list(a.get("strides", [1, 1]))
        dilations = list(a.get("dilations", [1, 1]))
        if len(kernel) != 2:
            raise ImportRefused(f"{_describe(node)} is not 2-D (kernel {kernel}).")
        auto_pad = a.get("auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
        if auto_pad in ("NOTSET", ""):
            onnx_pads = list(a.get("pads", [0, 0, 0, 0]))
            pads = [onnx_pads[0], onnx_pads[1], onnx_pads[2], onnx_pads[3]]
        elif auto_pad == "VALID":
            pads = [0, 0, 0, 0]
        else:  # SAME_UPPER / SAME_LOWER: output = ceil(input / stride), the odd pixel after
            pads = []
            h, w, _ = self.shape
            for size, k, s, d in zip((h, w), kernel, strides, dilations, strict=True):
                total = max(0, (-(-size // s) - 1) * s + (k - 1) * d + 1 - size)
                small, big = total // 2, total - total // 2
                pads.append((small, big) if auto_pad == "SAME_UPPER" else (big, small))
            pads = [pads[0][0], pads[1][0], pads[0][1], pads[1][1]]
        return {
            "kernel": [int(k) for k in kernel],
            "stride": [int(s) for s in strides],
            "pads": [int(p) for p in pads],
            "dilation": [int(d) for d in dilations],
            "ceil_mode": bool(a.get("ceil_mode", 0)),
        }

    # --- one handler per operator ------------------------------------------------------------

    def _on_Conv(self, node: Any) -> None:
        self._need_volume(node)
        weight = self._const_input(node, 1, "weight")
        bias = self._const_input(node, 2, "bias")
        if weight is None or weight.ndim != 4:
            raise ImportRefused(f"{_describe(node)} is not a 2-D convolution.")
        f = weight.shape[0]
        bias = np.zeros(f, np.float32) if bias is None else bias
        group = int(_attributes(node).get("group", 1))
        c = self.shape[2]
        if group not in (1, c):
            raise ImportRefused(
                f"{_describe(node)} has group={group} over {c} channels; ConvScope imports "
                "convolutions with groups 1 and depthwise ones (groups = channels)."
            )
        window = self._window(node, list(weight.shape[2:]))
        k, s, p, d = window["kernel"], window["stride"], window["pads"], window["dilation"]
        simple = k[0] == k[1] and s[0] == s[1] and len(set(p)) == 1 and d == [1, 1]
        if simple and group == 1:
            options = {"filters": f, "size": k[0], "stride": s[0], "pad": p[0]}
            self._emit(node, "conv", options, {"weight": weight, "bias": bias})
        else:
            options = {"filters": f, "kernel": k, "stride": s, "pads": p, "dilation": d}
            options["groups"] = group
            self._emit(node, "conv2d", options, {"weight": weight, "bias": bias})

    def _pool(self, node: Any, kind: str) -> None:
        self._need_volume(node)
        a = _attributes(node)
        window = self._window(node, list(a.get("kernel_shape", [])))
        if window.pop("dilation") != [1, 1]:
            raise ImportRefused(f"{_describe(node)} is dilated; ConvScope pools are not.")
        k, s, p = window["kernel"], window["stride"], window["pads"]
        h, w, _ = self.shape
        exact = (h - k[0]) % s[0] == 0 and (w - k[1]) % s[1] == 0
        if kind == "maxpool" and k[0] == k[1] and s[0] == s[1] and p == [0] * 4:
            if exact or not window["ceil_mode"]:
                self._emit(node, "pool", {"size": k[0], "stride": s[0]})
                return
        if kind == "avgpool":
            window["count_include_pad"] = bool(a.get("count_include_pad", 0))
        self._emit(node, kind, window)

    def _on_MaxPool(self, node: Any) -> None:
        self._pool(node, "maxpool")

    def _on_AveragePool(self, node: Any) -> None:
        self._pool(node, "avgpool")

    def _on_GlobalAveragePool(self, node: Any) -> None:
        self._need_volume(node)
        self._emit(node, "gap", {})

    def _on_BatchNormalization(self, node: Any) -> None:
        scale, bias, mean, var = (
            self._const_input(node, i, what)
            for i, what in enumerate(("scale", "bias", "mean", "variance"), start=1)
        )
        eps = float(_attributes(node).get("epsilon", 1e-5))
        previous = self.layers[-1] if self.layers else None
        if self.fold_batchnorm and previous and previous["kind"] in ("conv", "conv2d", "fc"):
            name = previous["name"]
            factor = scale / np.sqrt(var + eps)
            w = self.state[f"{name}.weight"]
            shape = (-1,) + (1,) * (w.ndim - 1)
            self.state[f"{name}.weight"] = (w * factor.reshape(shape)).astype(np.float32)
            b = self.state[f"{name}.bias"]
            self.state[f"{name}.bias"] = ((b - mean) * factor + bias).astype(np.float32)
            self.sources[name].append(node.name or node.output[0])
            return
        params = {"weight": scale, "bias": bias, "running_mean": mean, "running_var": var}
        self._emit(node, "batchnorm", {"eps": eps}, params)

    def _elementwise(self, node: Any) -> None:
        kind = ELEMENTWISE[node.op_type]
        options = {}
        if kind == "leakyrelu":
            options["alpha"] = float(_attributes(node).get("alpha", 0.01))
        self._emit(node, kind, options)

    def _to_vector(self, node: Any, target: list[int] | None) -> None:
        h, w, d = self.shape
        features = h * w * d
        if target is not None:
            batch_ok = len(target) == 2 and target[0] in (0, 1, -1)
            if not batch_ok or target[1] not in (-1, features) or (target[0] == -1 == target[1]):
                raise ImportRefused(
                    f"{_describe(node)} reshapes {self._shape_text()} to {target}; ConvScope "
                    "imports reshapes to a vector (batch, features) only."
                )
        self.flat = True
        if self.layers:
            self.sources[self.layers[-1]["name"]].append(node.name or node.output[0])

    def _on_Flatten(self, node: Any) -> None:
        axis = int(_attributes(node).get("axis", 1))
        if axis != 1:
            raise ImportRefused(f"{_describe(node)} flattens from axis {axis}; ConvScope needs 1.")
        self._to_vector(node, None)

    def _on_Reshape(self, node: Any) -> None:
        target = self._const_input(node, 1, "shape")
        self._to_vector(node, None if target is None else [int(v) for v in target])

    def _on_Squeeze(self, node: Any) -> None:
        h, w, _ = self.shape
        if self.flat or (h, w) != (1, 1):
            raise ImportRefused(
                f"{_describe(node)} squeezes {self._shape_text()}; ConvScope imports Squeeze "
                "only of a 1x1 volume into a vector."
            )
        self._to_vector(node, None)

    def _fc(self, node: Any, weight: np.ndarray, bias: np.ndarray) -> None:
        h, w, d = self.shape
        if weight.shape[1] != h * w * d:
            raise ImportRefused(
                f"{_describe(node)} takes {weight.shape[1]} features, but its input "
                f"{self._shape_text()} has {h * w * d}."
            )
        if not self.flat and (h, w) != (1, 1):
            raise ImportRefused(
                f"{_describe(node)} multiplies an image volume without flattening it first."
            )
        self._emit(node, "fc", {"units": int(weight.shape[0])}, {"weight": weight, "bias": bias})
        self.flat = True

    def _on_Gemm(self, node: Any) -> None:
        a = _attributes(node)
        if a.get("transA", 0):
            raise ImportRefused(f"{_describe(node)} transposes its input (transA=1).")
        b = self._const_input(node, 1, "weight")
        c = self._const_input(node, 2, "bias")
        if b is None or b.ndim != 2:
            raise ImportRefused(f"{_describe(node)} needs a 2-D weight matrix.")
        weight = (b if a.get("transB", 0) else b.T) * float(a.get("alpha", 1.0))
        units = weight.shape[0]
        bias = np.zeros(units, np.float32) if c is None else c * float(a.get("beta", 1.0))
        self._fc(node, weight, np.broadcast_to(bias.reshape(-1), (units,)).copy())

    def _on_MatMul(self, node: Any) -> None:
        b = self._const_input(node, 1, "weight")
        if b is None or b.ndim != 2 or node.input[0] in self.consts:
            raise ImportRefused(
                f"{_describe(node)} must multiply the input vector by a 2-D weight matrix."
            )
        self._fc(node, b.T, np.zeros(b.shape[1], np.float32))

    def _on_Add(self, node: Any) -> None:
        constant = next(self.consts[i] for i in node.input if i in self.consts)
        previous = self.layers[-1] if self.layers else None
        if previous is None or previous["kind"] not in ("fc", "conv", "conv2d"):
            raise ImportRefused(
                f"{_describe(node)} adds a constant; ConvScope imports that only as the bias "
                "of the MatMul, Gemm or Conv just before it."
            )
        bias = self.state[f"{previous['name']}.bias"]
        try:
            added = np.broadcast_to(np.squeeze(constant).astype(np.float32), bias.shape)
        except ValueError:
            raise ImportRefused(
                f"{_describe(node)} adds a constant of shape {list(constant.shape)}, which is "
                f"not one number per output of {previous['name']}."
            ) from None
        self.state[f"{previous['name']}.bias"] = bias + added
        self.sources[previous["name"]].append(node.name or node.output[0])

    def _softmax(self, node: Any, kind: str) -> None:
        axis = int(_attributes(node).get("axis", -1))
        if axis not in (-1, 1):
            raise ImportRefused(f"{_describe(node)} works along axis {axis}; ConvScope needs 1.")
        self._flatten_if_needed()
        self._emit(node, kind, {})
        self.finished_by = node

    def _on_Softmax(self, node: Any) -> None:
        self._softmax(node, "softmax")

    def _on_LogSoftmax(self, node: Any) -> None:
        self._softmax(node, "logsoftmax")

    # --- the end -----------------------------------------------------------------------------

    def finish(self) -> None:
        if not self.layers:
            raise ImportRefused("The graph has no layers ConvScope can show.")
        self._flatten_if_needed()
        declared = _dims(self.output)
        known = [d for d in declared[1:] if isinstance(d, int)]
        if declared and known and int(np.prod(known)) != self.shape[2]:
            raise ImportRefused(
                f"The graph declares its output {self.output.name!r} as {declared}, but the "
                f"layers give {self.shape[2]} scores."
            )


def convert(proto: Any, *, fold_batchnorm: bool = False) -> Imported:
    """The ONNX ModelProto as ConvScope layers; ImportRefused if it is not a supported chain."""
    chain = _Chain(proto, fold_batchnorm)
    chain.walk()
    chain.finish()
    opsets = [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")]
    producer = " ".join(p for p in (proto.producer_name, proto.producer_version) if p)
    return Imported(
        input_shape=chain.input_shape,
        output_depth=chain.shape[2],
        layers=chain.layers,
        state=chain.state,
        nodes=chain.sources,
        producer=producer,
        opset=opsets[0] if opsets else None,
        dropped=chain.dropped,
    )


def random_input(net: Network, seed: int = 0) -> np.ndarray:
    """A (1, H, W, D) float32 batch of random normalised pixels."""
    pixels = np.random.default_rng(seed).integers(0, 256, (1, *net.input_shape), np.uint8)
    return net.preprocess(pixels)


def check_forward(net: Network, x: np.ndarray) -> np.ndarray:
    """Push x through net; ImportRefused if any layer gives NaN or infinity. The scores."""
    for layer, volume in net.forward_iter(x):
        if not np.isfinite(volume).all():
            raise ImportRefused(
                f"Layer {layer.name} ({layer.kind}) gives NaN or infinity on a random input; "
                "the weights may be broken."
            )
    return volume.reshape(len(x), -1)


def onnxruntime_scores(data: bytes, x: np.ndarray) -> np.ndarray | None:
    """The graph's own output for x (N, H, W, D) by ONNX Runtime, or None if not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    (out,) = session.run(None, {name: np.ascontiguousarray(x.transpose(0, 3, 1, 2))})[:1]
    return np.asarray(out).reshape(len(x), -1)
