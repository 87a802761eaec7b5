"""The precomputed pictures of the shipped models: all there for the server's settings, and
what the ascent makes today (a recipe changed without its cache key would serve stale ones)."""

import json

import numpy as np
import pytest

import model
from model.channels import INDEXED_KINDS, VisSettings, visualize, weights_sha256
from model.channels.files import read_sprite
from model.weights import SHIPPED_DIR


@pytest.mark.parametrize("model_id", ["mnist", "cifar10", "cs231n"])
def test_every_channel_is_precomputed_for_the_servers_settings(model_id: str) -> None:
    net = model.load(model_id)
    root = SHIPPED_DIR / f"{model_id}.channels" / "visualizations"
    folder = root / weights_sha256(net)[:16] / VisSettings().key()
    expected = {
        f"{i:02d}-{d:03d}"
        for i, layer in enumerate(net.layers)
        if layer.kind in INDEXED_KINDS
        for d in range(layer.output_shape[2])
    }
    assert {p.stem for p in folder.glob("*.json")} == expected
    assert [p.name for p in root.glob("*/*")] == [folder.name]  # no pictures of old settings
    # A relu channel (climbed on its own since recipe 2): the stored image is today's.
    relu = next(i for i, layer in enumerate(net.layers) if layer.kind == "relu")
    meta = json.loads((folder / f"{relu:02d}-001.json").read_text())
    assert meta["strip"] == f"{relu:02d}-001.png" and len(meta["frames"]["steps"]) == 6
    strip = read_sprite(folder / meta["strip"])
    made = visualize(net, relu, 1)
    np.testing.assert_array_equal(strip[:, -strip.shape[0] :], made.image)
    assert meta["activation"] == made.activation
