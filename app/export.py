"""`convscope forward`: one image through one model, every layer written to a folder.

The same preprocessing, pictures and statistics as the server, without one: input.png,
NN-<layer>.png per layer (all depth slices, labelled) and summary.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app import imaging, render, stream
from app.registry import load_model


def forward_to_directory(
    image: Path, model_id: str, out: Path, *, max_pixels: int, colormap: str | None = None
) -> dict[str, Any]:
    """Run `image` through `model_id`, write the pictures and summary.json to `out`, and
    return the summary. Raises ImageError, FileNotFoundError, or ValueError (unknown model).
    """
    served = load_model(model_id)
    net = served.network
    imaging.configure_pillow(max_pixels)
    pixels = imaging.prepare(
        image.read_bytes(), net.input_shape, digits=served.digits, max_pixels=max_pixels
    )
    volumes = [batch[0] for batch in net.forward(net.preprocess(pixels[None]))]
    out.mkdir(parents=True, exist_ok=True)
    (out / "input.png").write_bytes(render.pixels_png(pixels))
    layers = []
    width = len(str(len(volumes) - 1))
    for index, (layer, volume) in enumerate(zip(net.layers, volumes, strict=True)):
        name = f"{index:0{max(2, width)}d}-{layer.name}.png"
        (out / name).write_bytes(render.volume_png(volume, colormap=colormap))
        layers.append(
            {
                "index": index,
                "name": layer.name,
                "kind": layer.kind,
                "shape": list(volume.shape),
                "stats": stream.stats(volume),
                "png": name,
            }
        )
    probs = stream.probabilities(volumes[-1], net.layers[-1].kind == "softmax")
    summary = {
        "model": served.id,
        "trained": served.trained,
        "image": str(image),
        "input": {"shape": list(pixels.shape), "png": "input.png"},
        "layers": layers,
        "probabilities": [float(p) for p in probs],
        "top": stream.top(probs, net.classes),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
