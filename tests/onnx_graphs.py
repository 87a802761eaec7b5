"""ONNX graphs for the tests and the benchmark, built with onnx.helper (no PyTorch).

graph = Graph((1, 3, 8, 8))
graph.conv(4, 3, pads=1).op("Relu").op("MaxPool", kernel_shape=[2, 2], strides=[2, 2])
graph.op("Flatten").gemm(10).op("Softmax", axis=1)
data = graph.bytes()            # a serialised ModelProto
graph.weights["conv1.W"]        # the random numbers it holds, for a reference by hand
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13


class Graph:
    """A chain of nodes from one input; each method appends one node (or two)."""

    def __init__(self, input_shape=(1, 3, 8, 8), seed: int = 0, input_name: str = "image"):
        self.rng = np.random.default_rng(seed)
        self.input_shape = list(input_shape)
        self.input_name = input_name
        self.current = input_name
        self.nodes: list[Any] = []
        self.weights: dict[str, np.ndarray] = {}
        self.count = 0

    def _name(self, op: str) -> str:
        self.count += 1
        return f"{op.lower()}{self.count}"

    def const(self, name: str, value: np.ndarray) -> str:
        self.weights[name] = np.asarray(value)
        return name

    def random(self, name: str, shape, scale: float | None = None) -> str:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        scale = np.sqrt(2.0 / fan_in) if scale is None else scale
        return self.const(name, (self.rng.standard_normal(shape) * scale).astype(np.float32))

    def node(self, op: str, inputs: list[str], name: str | None = None, **attrs) -> Graph:
        name = name or self._name(op)
        output = f"{name}_out"
        self.nodes.append(helper.make_node(op, [self.current, *inputs], [output], name, **attrs))
        self.current = output
        return self

    def op(self, op: str, **attrs) -> Graph:
        return self.node(op, [], **attrs)

    def channels(self) -> int:
        return self.shape()[1]

    def shape(self) -> list[int]:
        """The current tensor's shape, by ONNX shape inference."""
        if self.current == self.input_name:
            return list(self.input_shape)
        model = onnx.shape_inference.infer_shapes(self.model(output=self.current))
        info = next(v for v in model.graph.output if v.name == self.current)
        return [d.dim_value for d in info.type.tensor_type.shape.dim]

    def conv(self, filters, kernel, stride=1, pads=0, dilation=1, group=1, bias=True, **attrs):
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        name = self._name("Conv")
        inputs = [self.random(f"{name}.W", (filters, self.channels() // group, kh, kw))]
        if bias:
            inputs.append(self.random(f"{name}.B", (filters,), 0.1))
        pads = [pads] * 4 if isinstance(pads, int) else list(pads)
        if attrs.get("auto_pad"):
            pads = None
        stride = [stride] * 2 if isinstance(stride, int) else list(stride)
        dilation = [dilation] * 2 if isinstance(dilation, int) else list(dilation)
        extra = {"pads": pads} if pads is not None else {}
        return self.node(
            "Conv",
            inputs,
            name,
            kernel_shape=[kh, kw],
            strides=stride,
            dilations=dilation,
            group=group,
            **extra,
            **attrs,
        )

    def batchnorm(self, epsilon: float = 1e-5) -> Graph:
        c = self.channels()
        name = self._name("BatchNormalization")
        inputs = [
            self.const(f"{name}.scale", self.rng.uniform(0.5, 1.5, c).astype(np.float32)),
            self.const(f"{name}.bias", self.rng.normal(0, 0.1, c).astype(np.float32)),
            self.const(f"{name}.mean", self.rng.normal(0, 0.1, c).astype(np.float32)),
            self.const(f"{name}.var", self.rng.uniform(0.5, 2, c).astype(np.float32)),
        ]
        return self.node("BatchNormalization", inputs, name, epsilon=epsilon)

    def features(self) -> int:
        return int(np.prod(self.shape()[1:]))

    def gemm(self, units: int, trans_b: int = 1, alpha: float = 1.0, beta: float = 1.0) -> Graph:
        n = self.features()
        name = self._name("Gemm")
        shape = (units, n) if trans_b else (n, units)
        w = self.random(f"{name}.W", shape, np.sqrt(2.0 / n))
        b = self.random(f"{name}.B", (units,), 0.1)
        return self.node("Gemm", [w, b], name, transB=trans_b, alpha=alpha, beta=beta)

    def matmul_add(self, units: int) -> Graph:
        n = self.features()
        name = self._name("MatMul")
        self.node("MatMul", [self.random(f"{name}.W", (n, units), np.sqrt(2.0 / n))], name)
        return self.node("Add", [self.random(f"{name}.B", (units,), 0.1)])

    def model(self, output: str | None = None, output_shape=None) -> onnx.ModelProto:
        output = output or self.current
        graph = helper.make_graph(
            self.nodes,
            "test",
            [helper.make_tensor_value_info(self.input_name, TensorProto.FLOAT, self.input_shape)],
            [helper.make_tensor_value_info(output, TensorProto.FLOAT, output_shape)],
            [numpy_helper.from_array(v, k) for k, v in self.weights.items()],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.producer_name = "tests/onnx_graphs.py"
        return model

    def bytes(self) -> bytes:
        return self.model().SerializeToString()


def small_classifier(seed: int = 0, channels: int = 3, side: int = 8) -> Graph:
    """conv3-4 relu maxpool2 / flatten gemm5 softmax: the smallest useful import."""
    graph = Graph((1, channels, side, side), seed)
    graph.conv(4, 3, pads=1).op("Relu").op("MaxPool", kernel_shape=[2, 2], strides=[2, 2])
    return graph.op("Flatten").gemm(5).op("Softmax", axis=1)


def vgg_style(side: int = 224, widths=(64, 128, 256, 512, 512), seed: int = 0) -> Graph:
    """VGG-style: per stage, two 3x3 convolutions (pad 1) with ReLU and a 2x2 max pool;
    then global average pool, two fully connected layers and a softmax over 1000 classes."""
    graph = Graph((1, 3, side, side), seed)
    for width in widths:
        for _ in range(2):
            graph.conv(width, 3, pads=1).op("Relu")
        graph.op("MaxPool", kernel_shape=[2, 2], strides=[2, 2])
    graph.op("GlobalAveragePool").op("Flatten").gemm(512).op("Relu").op("Dropout")
    return graph.gemm(1000).op("Softmax", axis=1)
