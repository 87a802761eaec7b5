"""model/onnx_import.py: ONNX graphs built with onnx.helper (tests/onnx_graphs.py) become
ConvScope layers that compute what the graph says, checked against the same computation by
hand with loops; what cannot be imported is refused in a sentence."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from model.onnx_import import ImportRefused, check_forward, convert, random_input, read_onnx
from tests.model.test_extra_layers import loop_conv, loop_pool
from tests.onnx_graphs import Graph, small_classifier


def network(graph: Graph, fold: bool = False, mean: float = 0.0, std: float = 1.0):
    imported = convert(read_onnx(graph.bytes()), fold_batchnorm=fold)
    c = imported.input_shape[2]
    return imported.network(
        name="t",
        classes=[f"c{i}" for i in range(imported.output_depth)],
        normalization={"mean": [mean] * c, "std": [std] * c},
        input_style="photo",
    )


def scores(net, x: np.ndarray) -> np.ndarray:
    return net.forward(x)[-1].reshape(len(x), -1)


def ort_scores(graph: Graph, x: np.ndarray) -> np.ndarray:
    onnxruntime = pytest.importorskip("onnxruntime")
    session = onnxruntime.InferenceSession(graph.bytes(), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {graph.input_name: x.transpose(0, 3, 1, 2).copy()})
    return out.reshape(len(x), -1)


def test_small_classifier_equals_the_computation_by_hand():
    graph = small_classifier(seed=3)
    net = network(graph)
    assert [layer.kind for layer in net.layers] == ["conv", "relu", "pool", "fc", "softmax"]
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype(np.float32)
    w = graph.weights
    hidden = loop_conv(x, w["conv1.W"], w["conv1.B"], (1, 1), (1, 1, 1, 1), (1, 1), 1)
    hidden = loop_pool(np.maximum(hidden, 0), (2, 2), (2, 2), (0, 0, 0, 0), False, "max")
    flat = hidden.transpose(0, 3, 1, 2).reshape(2, -1)  # ONNX Flatten of NCHW
    logits = flat @ w["gemm5.W"].T + w["gemm5.B"]
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(scores(net, x), expected, rtol=1e-4, atol=1e-6)


def general_graph() -> Graph:
    """Every general kind in one chain: rectangular strided conv with asymmetric padding,
    batchnorm, leaky relu, depthwise conv, ceil-mode max and average pools with padding,
    sigmoid, a dilated conv, tanh, global average pool, MatMul + Add, log-softmax."""
    graph = Graph((1, 3, 11, 9), seed=5)
    graph.conv(4, (3, 5), stride=(2, 1), pads=[0, 2, 1, 2]).batchnorm().op("LeakyRelu", alpha=0.2)
    graph.conv(4, 3, pads=1, group=4)
    graph.op("MaxPool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)
    graph.op(
        "AveragePool",
        kernel_shape=[2, 2],
        strides=[1, 1],
        pads=[0, 0, 1, 1],
        ceil_mode=1,
        count_include_pad=1,
    )
    graph.op("Sigmoid").conv(6, 3, dilation=2, pads=2).op("Tanh").op("GlobalAveragePool")
    return graph.op("Flatten").matmul_add(7).op("LogSoftmax", axis=1)


def by_hand(graph: Graph, x: np.ndarray, fold_free: bool = True) -> np.ndarray:
    """general_graph() computed with the loops, straight from the graph's numbers."""
    w = graph.weights
    h = loop_conv(x, w["conv1.W"], w["conv1.B"], (2, 1), (0, 2, 1, 2), (1, 1), 1)
    bn = "batchnormalization2"
    h = (h - w[f"{bn}.mean"]) / np.sqrt(w[f"{bn}.var"] + 1e-5) * w[f"{bn}.scale"] + w[f"{bn}.bias"]
    h = np.where(h > 0, h, 0.2 * h)
    h = loop_conv(h, w["conv4.W"], w["conv4.B"], (1, 1), (1, 1, 1, 1), (1, 1), 4)
    h = loop_pool(h, (3, 3), (2, 2), (1, 1, 1, 1), True, "max")
    h = loop_pool(h, (2, 2), (1, 1), (0, 0, 1, 1), True, "avg", count_include_pad=True)
    h = 1 / (1 + np.exp(-h))
    h = np.tanh(loop_conv(h, w["conv8.W"], w["conv8.B"], (1, 1), (2, 2, 2, 2), (2, 2), 1))
    logits = h.mean(axis=(1, 2)) @ w["matmul12.W"] + w["matmul12.B"]
    return logits - np.log(np.exp(logits).sum(1, keepdims=True))


@pytest.mark.parametrize("fold", [False, True])
def test_general_network_equals_the_computation_by_hand(fold):
    graph = general_graph()
    net = network(graph, fold=fold, mean=10.0, std=2.0)
    kinds = [layer.kind for layer in net.layers]
    start = ["conv2d", "leakyrelu"] if fold else ["conv2d", "batchnorm", "leakyrelu"]
    assert kinds[: len(start)] == start
    assert kinds[-3:] == ["gap", "fc", "logsoftmax"]
    x = np.random.default_rng(1).standard_normal((2, 11, 9, 3)).astype(np.float32)
    np.testing.assert_allclose(scores(net, x), by_hand(graph, x), rtol=1e-4, atol=1e-5)


def test_general_network_matches_onnxruntime():
    graph = general_graph()
    x = np.random.default_rng(2).standard_normal((1, 11, 9, 3)).astype(np.float32)
    np.testing.assert_allclose(scores(network(graph), x), ort_scores(graph, x), atol=1e-5)


@pytest.mark.parametrize(
    "build",
    [
        lambda g: g.conv(4, 3, stride=2, auto_pad="SAME_UPPER"),
        lambda g: g.conv(4, 2, stride=1, auto_pad="SAME_LOWER"),
        lambda g: g.conv(4, 3, auto_pad="VALID"),
        lambda g: g.op("MaxPool", kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"),
        lambda g: g.op("AveragePool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        lambda g: g.op("MaxPool", kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
        lambda g: g.op("MaxPool", kernel_shape=[3, 3], strides=[1, 1]),  # ONNX default stride
    ],
)
def test_padding_attributes_match_onnxruntime(build):
    graph = Graph((1, 3, 7, 7), seed=9)
    build(graph)
    graph.op("Flatten").gemm(3).op("Softmax", axis=1)
    x = np.random.default_rng(3).standard_normal((1, 7, 7, 3)).astype(np.float32)
    np.testing.assert_allclose(scores(network(graph), x), ort_scores(graph, x), atol=1e-6)


def test_gemm_attributes_reshape_constants_dropout_and_identity():
    graph = Graph((1, 1, 6, 6), seed=4)
    graph.conv(2, 3).op("Relu").op("Dropout").op("Identity")
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [1, -1])
    graph.nodes.append(helper.make_node("Constant", [], ["target"], "shape_const", value=shape))
    graph.node("Reshape", ["target"], "reshape")
    graph.gemm(4, trans_b=0, alpha=0.5, beta=2.0).op("Softmax", axis=-1)
    net = network(graph)
    assert [layer.kind for layer in net.layers] == ["conv", "relu", "fc", "softmax"]
    w = graph.weights
    x = np.random.default_rng(5).standard_normal((1, 6, 6, 1)).astype(np.float32)
    hidden = np.maximum(loop_conv(x, w["conv1.W"], w["conv1.B"], (1, 1), (0,) * 4, (1, 1), 1), 0)
    logits = 0.5 * hidden.transpose(0, 3, 1, 2).reshape(1, -1) @ w["gemm5.W"] + 2.0 * w["gemm5.B"]
    expected = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(scores(net, x), expected, rtol=1e-4)


def test_a_network_without_softmax_ends_in_its_scores():
    graph = Graph((1, 3, 4, 4), seed=6).conv(3, 4)  # 1x1x3 output, no flatten, no softmax
    net = network(graph)
    assert net.layers[-1].output_shape == (1, 1, 3)
    x = random_input(net)
    assert net.predict(x).sum() == pytest.approx(1.0)


def test_gradients_flow_through_an_imported_network():
    """Attributions need d score / d input: the layers' backward chained, in float64,
    against finite differences."""
    net = network(general_graph(), mean=0.0, std=1.0).astype(np.float64)
    x = np.random.default_rng(7).standard_normal((1, 11, 9, 3))

    def score(x):
        out = x
        for layer in net.layers:
            out = layer.forward(out)
        return out[0, 0, 0, 2]

    out, caches = x, []
    for layer in net.layers:
        out, cache = layer.forward_train(out)
        caches.append(cache)
    grad = np.zeros_like(out)
    grad[0, 0, 0, 2] = 1
    for layer, cache in zip(reversed(net.layers), reversed(caches), strict=True):
        grad, _ = layer.backward(grad, cache)
    rng = np.random.default_rng(8)
    for _ in range(12):
        index = tuple(rng.integers(0, s) for s in x.shape)
        plus, minus = x.copy(), x.copy()
        plus[index] += 1e-6
        minus[index] -= 1e-6
        numeric = (score(plus) - score(minus)) / 2e-6
        assert grad[index] == pytest.approx(numeric, rel=1e-5, abs=1e-9)


def test_random_forward_check_catches_broken_weights():
    graph = small_classifier()
    graph.weights["conv1.W"][0, 0, 0, 0] = np.nan
    net = network(graph)
    with pytest.raises(ImportRefused, match="conv1 .conv. gives NaN"):
        check_forward(net, random_input(net))


# --- refusals: a sentence naming the operator, the node and what is supported --------------


def residual_graph() -> onnx.ModelProto:
    graph = Graph((1, 3, 8, 8), seed=1)
    graph.conv(3, 3, pads=1)
    skip = graph.current
    graph.op("Relu").conv(3, 3, pads=1)
    graph.nodes.append(helper.make_node("Add", [graph.current, skip], ["sum"], "residual_add"))
    graph.current = "sum"
    return graph.op("GlobalAveragePool").op("Flatten").gemm(2).model()


def refusal(proto_or_graph) -> str:
    proto = (
        proto_or_graph if isinstance(proto_or_graph, onnx.ModelProto) else proto_or_graph.model()
    )
    with pytest.raises(ImportRefused) as caught:
        convert(read_onnx(proto.SerializeToString()))
    return str(caught.value)


def test_a_residual_add_is_refused_naming_the_branch():
    message = refusal(residual_graph())
    assert (
        "feeds 2 nodes" in message
        and "'relu2' (Relu)" in message
        and "'conv3' (Conv)" not in message
    )
    assert "residual" in message and "chains of layers only" in message


def test_a_concat_is_refused_naming_it():
    graph = Graph((1, 3, 8, 8))
    graph.conv(2, 1)
    graph.nodes.append(helper.make_node("Concat", [graph.current], ["cat"], "join", axis=1))
    graph.current = "cat"
    message = refusal(graph.op("Flatten").gemm(2))
    assert "node 'join' (Concat)" in message and "no residual Add or Concat" in message


def test_an_unsupported_operator_is_refused_naming_it_and_what_is_supported():
    graph = Graph((1, 3, 8, 8))
    graph.conv(2, 1).node("LRN", [], "norm1", size=3)
    message = refusal(graph.op("Flatten").gemm(2))
    assert message.startswith("node 'norm1' (LRN) is an operator ConvScope does not import")
    assert "supported: Conv (groups 1 or depthwise), Gemm" in message


@pytest.mark.parametrize(
    "shape, expected",
    [
        ((1, 4, 8, 8), "1 or 3 channels"),
        ((1, 3, 256, 256), "at most 224x224"),
        ((1, 3, "height", 8), "fixed numbers"),
        ((1, 3, 8), "NCHW input"),
    ],
)
def test_inputs_that_are_not_small_images_are_refused(shape, expected):
    graph = Graph(shape)
    graph.nodes.append(helper.make_node("Relu", ["image"], ["out"], "relu"))
    graph.current = "out"
    assert expected in refusal(graph)


def test_grouped_convolution_and_softmax_in_the_middle_are_refused():
    graph = Graph((1, 3, 6, 6))
    graph.conv(4, 1).conv(4, 3, group=2)
    assert "group=2 over 4 channels" in refusal(graph)
    graph = Graph((1, 3, 6, 6)).op("Flatten").gemm(2).op("Softmax", axis=1).op("Relu")
    assert "only as the last node" in refusal(graph)


def test_weights_computed_from_other_nodes_are_refused():
    graph = Graph((1, 3, 4, 4))
    graph.weights["w"] = np.ones((2, 3, 1, 1), np.float32)
    graph.nodes.append(helper.make_node("Relu", ["w"], ["w_relu"], "make_w"))
    graph.node("Conv", ["w_relu"], "conv", kernel_shape=[1, 1])
    assert "node 'conv' (Conv) combines 2 tensors (image, w_relu)" in refusal(graph)


def test_bytes_that_are_not_onnx_are_refused():
    with pytest.raises(ImportRefused, match="photo.onnx is not an ONNX model"):
        read_onnx(b"\x89PNG\r\n\x1a\n not a model at all", "photo.onnx")


def test_initialisers_listed_as_graph_inputs_are_not_taken_for_the_image():
    """Older exporters (opset < 9) list every initialiser among the graph's inputs."""
    graph = small_classifier()
    proto = graph.model()
    for name, value in graph.weights.items():
        proto.graph.input.append(
            helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape))
        )
    imported = convert(read_onnx(proto.SerializeToString()))
    assert imported.input_shape == (8, 8, 3) and imported.output_depth == 5
    assert numpy_helper.to_array(proto.graph.initializer[0]).shape == (4, 3, 3, 3)
