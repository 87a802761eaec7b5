"""`convscope forward`: one image through one model, every layer written to a folder.

The same preprocessing, inference path (app/inference.py), pictures and statistics as the
server, without one: input.png, NN-<layer>.png per layer (all depth slices, labelled) and
summary.json, the run's record (app/record.py) with the file of each picture.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from app import imaging, inference, render
from app.record import RunInput, RunRecord
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
    out.mkdir(parents=True, exist_ok=True)
    (out / "input.png").write_bytes(render.pixels_png(pixels))
    record = RunRecord(
        id="",
        model=served.id,
        trained=served.trained,
        created=time.time(),
        classes=net.classes,
        input=RunInput(shape=list(pixels.shape)),
    )
    width = max(2, len(str(len(net.layers) - 1)))
    files, last = [], None
    for index, (layer, volume, numbers) in enumerate(inference.layers(net, pixels)):
        inference.add_layer(record, layer, volume, numbers)
        files.append(f"{index:0{width}d}-{layer.name}.png")
        (out / files[-1]).write_bytes(render.volume_png(volume, colormap=colormap))
        last = volume
    inference.add_scores(record, *inference.scores(net, last))
    run = record.dump()
    summary = {
        "model": run["model"],
        "trained": run["trained"],
        "image": str(image),
        "input": {"shape": run["input"]["shape"], "png": "input.png"},
        "layers": [
            {**layer, "png": name} for layer, name in zip(run["layers"], files, strict=True)
        ],
        "probabilities": run["probabilities"],
        "top": run["top"],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
