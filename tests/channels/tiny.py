"""Tiny hand-set networks and datasets for the channel views' tests."""

import numpy as np

import model
from model.channels import build_index, weights_sha256
from model.channels.files import write_index

TINY_SPEC = {
    "name": "tiny",
    "input": [8, 8, 3],
    "classes": ["a", "b"],
    "normalization": {"mean": [100.0, 120.0, 90.0], "std": [50.0, 60.0, 40.0]},
    "layers": [
        {"kind": "conv", "filters": 4, "size": 3, "stride": 1, "pad": 1},
        {"kind": "relu"},
        {"kind": "pool", "size": 2, "stride": 2},
        {"kind": "conv", "filters": 3, "size": 3, "stride": 1, "pad": 1},
        {"kind": "relu"},
        {"kind": "fc", "units": 2},
        {"kind": "softmax"},
    ],
}


def tiny_network(seed: int = 0, dead: bool = True) -> model.Network:
    """The tiny network with small integer weights (so equal activations are common) and,
    with dead=True, a conv1 filter that is zero everywhere (a channel of ties only)."""
    net = model.build(TINY_SPEC, seed)
    rng = np.random.default_rng(seed)
    for value in net.state_dict().values():
        value[...] = rng.integers(-2, 3, value.shape)
    if dead:
        net.layers[0].params["weight"][1] = 0
        net.layers[0].params["bias"][1] = 0
    return net


def tiny_images(count: int = 13, seed: int = 1, shape=(8, 8, 3)) -> np.ndarray:
    """Images of few distinct values (0, 100, 200), so activations tie often."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 3, (count, *shape)) * 100).astype(np.uint8)


def write_test_index(net: model.Network, model_id: str, folder, images, wrong_hash=False):
    """An index of `images` for net, written to folder, as `convscope index` does."""
    found = build_index(net, images, k=9, batch_size=4)
    labels = np.arange(len(images)) % max(len(net.classes), 1)
    digest = "0" * 64 if wrong_hash else weights_sha256(net)
    return write_index(
        folder,
        found,
        model=model_id,
        weights_sha256=digest,
        dataset={"source": "synthetic", "sha256": "1" * 64, "split": "test", "format": "test"},
        paths=[f"test/{labels[n]}/{n:04d}.png" for n in range(len(images))],
        labels=labels,
        classes=net.classes,
    )
