"""Winograd F(2x2, 3x3) against the loop convolution, and the training step that uses it
against finite differences and against im2col."""

import numpy as np
import pytest

import model
from model import layers, network, winograd
from model.layers import Conv
from tests.model.test_layers import check_layer_gradients, loop_conv
from tests.model.test_network import check_network_gradients


@pytest.mark.parametrize(
    "n, h, w, c, f",
    [(2, 8, 8, 3, 4), (1, 7, 5, 2, 3), (2, 1, 1, 2, 2), (1, 9, 4, 5, 1), (1, 2, 3, 1, 6)],
)
def test_conv3x3_matches_the_loop_convolution(n, h, w, c, f):
    rng = np.random.default_rng(h * 10 + w)
    x = rng.standard_normal((n, h, w, c))
    weight = rng.standard_normal((f, c, 3, 3))
    out = winograd.conv3x3(x, winograd.transform_filters(weight))
    assert out.shape == (n, h, w, f)
    np.testing.assert_allclose(out, loop_conv(x, weight, np.zeros(f), 1, 1), atol=1e-12)
    # The bias, added inside the output transform (through one of the 16 products).
    bias = rng.standard_normal(f)
    out = winograd.conv3x3(x, winograd.transform_filters(weight), bias)
    np.testing.assert_allclose(out, loop_conv(x, weight, bias, 1, 1), atol=1e-12)


def input_tiles_of_random(h: int, w: int) -> tuple[np.random.Generator, np.ndarray, np.ndarray]:
    """(the generator, a random input (2, h, w, 3), its input tiles) for the tile tests."""
    rng = np.random.default_rng(h * 10 + w)
    x = rng.standard_normal((2, h, w, 3))
    th, tw = winograd._tile_counts(x.shape)
    tiles = np.empty((16, 2, th, tw, 3))
    winograd._input_tiles(x, tiles)
    return rng, x, tiles


@pytest.mark.parametrize("h, w", [(6, 6), (5, 7), (1, 1), (2, 3)])
def test_input_tiles_are_b_transpose_d_b_of_every_padded_4x4_tile(h, w):
    _, x, tiles = input_tiles_of_random(h, w)
    th, tw = tiles.shape[2:4]
    b_t = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]])
    padded = np.zeros((2, 2 * th + 2, 2 * tw + 2, 3))
    padded[:, 1 : h + 1, 1 : w + 1] = x
    for ti in range(th):
        for tj in range(tw):
            d = padded[:, 2 * ti : 2 * ti + 4, 2 * tj : 2 * tj + 4]  # (N, 4, 4, C)
            expected = np.einsum("ia,nabc,jb->ijnc", b_t, d, b_t).reshape(16, 2, 3)
            np.testing.assert_allclose(tiles[:, :, ti, tj], expected, atol=1e-12)


@pytest.mark.parametrize("h, w", [(6, 6), (5, 7), (1, 1), (2, 3)])
def test_the_input_gradient_of_tiles_is_the_transpose_of_making_them(h, w):
    # <tiles of x, dtiles> = <x, _input_gradient(dtiles)> for every x and dtiles.
    rng, x, tiles = input_tiles_of_random(h, w)
    th, tw = tiles.shape[2:4]
    dtiles = rng.standard_normal(tiles.shape)
    dx = np.empty((2, 2 * th, 2 * tw, 3))
    winograd._input_gradient(dtiles, dx)
    np.testing.assert_allclose(np.sum(tiles * dtiles), np.sum(x * dx[:, :h, :w]), rtol=1e-12)
    # and pixel by pixel: each entry of x alone.
    for index in [(0, 0, 0, 0), (1, h - 1, w - 1, 2), (0, h // 2, w // 2, 1)]:
        unit = np.zeros_like(x)
        unit[index] = 1
        winograd._input_tiles(unit, tiles)
        np.testing.assert_allclose(np.sum(tiles * dtiles), dx[:, :h, :w][index], atol=1e-12)


def test_only_3x3_stride_1_padding_1_applies():
    assert winograd.applies(3, 1, 1)
    assert not any(winograd.applies(*geometry) for geometry in [(3, 2, 1), (3, 1, 0), (5, 1, 2)])


@pytest.fixture
def winograd_everywhere(monkeypatch):
    """Training takes the Winograd path even for the few channels a gradient check affords."""
    monkeypatch.setattr(layers, "WINOGRAD_MIN_CHANNELS", 1)


@pytest.mark.usefixtures("winograd_everywhere")
@pytest.mark.parametrize("h, w", [(6, 6), (5, 7)])
def test_winograd_training_step_matches_finite_differences(h, w):
    rng = np.random.default_rng(h + w)
    layer = Conv("conv", (h, w, 2), filters=3, size=3, pad=1)
    x = rng.standard_normal((2, h, w, 2))
    check_layer_gradients(layer, x, rng)
    # forward_train (Winograd) and forward (im2col) agree too.
    np.testing.assert_allclose(layer.forward_train(x)[0], layer.forward(x), atol=1e-12)


def test_a_wide_layer_trains_the_same_by_winograd_and_by_im2col(monkeypatch):
    rng = np.random.default_rng(0)
    layer = Conv("conv", (8, 8, 64), filters=64, size=3, pad=1)
    layer.params = {
        "weight": (0.05 * rng.standard_normal((64, 64, 3, 3))).astype(np.float32),
        "bias": rng.standard_normal(64).astype(np.float32),
    }
    x = rng.standard_normal((4, 8, 8, 64)).astype(np.float32)
    dout = rng.standard_normal((4, 8, 8, 64)).astype(np.float32)

    def step():
        out, cache = layer.forward_train(x)
        return out, *layer.backward(dout, cache)

    assert layer._winograd(64)
    out, dx, grads = step()
    monkeypatch.setattr(layers, "WINOGRAD_MIN_CHANNELS", 10**9)
    ref_out, ref_dx, ref_grads = step()
    assert out.dtype == dx.dtype == np.float32
    np.testing.assert_allclose(out, ref_out, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-4, atol=1e-4)
    for name in grads:
        np.testing.assert_allclose(grads[name], ref_grads[name], rtol=1e-4, atol=1e-3)


def test_batches_transformed_a_few_images_at_a_time_give_the_same_result(monkeypatch):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 5, 6, 2))
    weight = rng.standard_normal((4, 2, 3, 3))
    dout = rng.standard_normal((3, 5, 6, 4))
    whole = winograd.conv3x3_keeping_tiles(x, winograd.transform_filters(weight))
    assert len(winograd._chunks(3, 100)) == 1  # the whole batch at once
    whole_dw = winograd.filter_gradient(whole[1], dout)
    monkeypatch.setattr(winograd, "CHUNK_BYTES", 1)  # one image per chunk
    monkeypatch.setattr(winograd, "CHUNK_ROWS", 1)
    assert len(winograd._chunks(3, 100)) == 3
    out, tiles = winograd.conv3x3_keeping_tiles(x, winograd.transform_filters(weight))
    np.testing.assert_allclose(out, whole[0], atol=1e-12)
    np.testing.assert_allclose(tiles, whole[1], atol=1e-12)
    np.testing.assert_allclose(winograd.filter_gradient(tiles, dout), whole_dw, atol=1e-12)


@pytest.mark.parametrize("chunk_bytes", [2**20, 1])  # the whole batch at once, one image
def test_gradients_match_the_loop_convolutions(monkeypatch, chunk_bytes):
    monkeypatch.setattr(winograd, "CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(winograd, "CHUNK_ROWS", 1)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 5, 6, 2))  # odd height: the last tile row is cropped
    weight = rng.standard_normal((4, 2, 3, 3))
    dout = rng.standard_normal((3, 5, 6, 4))
    _, tiles = winograd.conv3x3_keeping_tiles(x, winograd.transform_filters(weight))
    dx, dweight, dbias = winograd.gradients(tiles, dout, winograd.transform_filters(weight))
    # The input's gradient is the full convolution of dout with the turned filters.
    turned = weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    np.testing.assert_allclose(dx, loop_conv(dout, turned, np.zeros(2), 1, 1), atol=1e-12)
    np.testing.assert_allclose(dbias, dout.sum(axis=(0, 1, 2)), atol=1e-12)
    # The weight's gradient: each tap's input pixels times dout, over the zero-padded input.
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    expected = np.empty_like(weight)
    for i in range(3):
        for j in range(3):
            window = padded[:, i : i + 5, j : j + 6]
            expected[:, :, i, j] = np.einsum("nhwc,nhwf->fc", window, dout)
    np.testing.assert_allclose(dweight, expected, atol=1e-12)
    assert winograd.gradients(tiles, dout)[0] is None


@pytest.mark.parametrize(
    "min_channels, c, f, need_dx",
    [
        (1, 3, 4, True),  # both gradients by Winograd, the mask chunk by chunk
        (1, 3, 4, False),  # the first layer: no input gradient
        (3, 3, 2, True),  # Winograd forward, the input gradient from its tiles too
        (4, 3, 4, True),  # im2col forward, input gradient by Winograd: the mask up front
        (10**9, 3, 4, True),  # im2col throughout
    ],
)
@pytest.mark.parametrize("pool", [None, (2, 2), (3, 2)])  # none, tiling, overlapping windows
@pytest.mark.parametrize("h, w", [(5, 6), (6, 4)])  # a 2x2 pool tiles only the second
def test_a_conv_and_its_relu_train_as_the_layers_one_after_the_other(
    monkeypatch, min_channels, c, f, need_dx, pool, h, w
):
    monkeypatch.setattr(layers, "WINOGRAD_MIN_CHANNELS", min_channels)
    monkeypatch.setattr(winograd, "CHUNK_BYTES", 1)  # one image per chunk
    monkeypatch.setattr(winograd, "CHUNK_ROWS", 1)
    rng = np.random.default_rng(c * 10 + f)
    conv = Conv("conv", (h, w, c), filters=f, size=3, pad=1)
    conv.params = {k: rng.standard_normal(v.shape) for k, v in conv.params.items()}
    conv.params["bias"][:] = 0
    conv.params["weight"][0] = 0  # a few exact zeros of the conv's output
    relu = layers.ReLU("relu", conv.output_shape)
    pooling = pool and layers.MaxPool("pool", conv.output_shape, *pool)
    x = rng.standard_normal((3, h, w, c))
    x[1, 1:4, 1:4] = 0  # ties for the max, in ReLU's zeros
    dout = rng.standard_normal((3, *(pooling or relu).output_shape))

    out, conv_cache = conv.forward_train(x)
    relu_out, relu_cache = relu.forward_train(out)
    gradient, last = dout, relu_out
    if pooling:
        last, pool_cache = pooling.forward_train(relu_out)
        gradient = pooling.backward(dout, pool_cache)[0]
    dx, grads = conv.backward(relu.backward(gradient, relu_cache)[0], conv_cache, need_dx)

    fused = layers.ConvReLU(conv, relu, pooling)
    fused_out, cache = fused.forward_train(x)
    fused_dx, fused_grads = fused.backward(dout, cache, need_dx)
    by_parity = layers.ChunkedGradient(dout, relu_out, pooling, last).by_parity
    assert by_parity == (pool == (2, 2) and (h, w) == (6, 4))
    assert (relu_out == 0).any()
    np.testing.assert_allclose(fused_out, last, atol=1e-12)
    assert (fused_dx is None) == (not need_dx)
    if need_dx:
        np.testing.assert_allclose(fused_dx, dx, atol=1e-12)
    for name in grads:
        np.testing.assert_allclose(fused_grads[name], grads[name], atol=1e-12)


@pytest.mark.usefixtures("winograd_everywhere")
def test_a_network_of_winograd_convs_and_relus_matches_finite_differences():
    spec = {
        "name": "pairs",
        "input": [6, 5, 2],
        "layers": [
            {"kind": "conv", "filters": 3, "size": 3, "stride": 1, "pad": 1},
            {"kind": "relu"},
            {"kind": "conv", "filters": 2, "size": 3, "stride": 1, "pad": 1},
            {"kind": "relu"},
            {"kind": "pool", "size": 2, "stride": 2},
            {"kind": "fc", "units": 3},
        ],
    }
    net = model.build(spec, seed=1).astype(np.float64)
    steps = network._training_steps(net.layers)
    assert [type(step).__name__ for step in steps] == ["ConvReLU", "ConvReLU", "FC"]
    assert steps[0].pool is None and steps[1].pool is net.layers[4]
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 6, 5, 2))
    labels = np.array([0, 2])
    check_network_gradients(net, x, labels, atol=1e-6, rtol=1e-5)
