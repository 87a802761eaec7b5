"""Channel views on disk: each model's top-patch index and its feature visualisations.

Where things are, for a model `id`:

    <channels_dir>/<id>.channels/index.json, layer-*.png     `convscope index` (read-only here)
    <channels_dir>/<id>.channels/visualizations/...           `convscope visualize`
    <channel_cache_dir>/<id>/...                              made on first request

channels_dir defaults to the folder of the shipped weights. A visualisation lives under
<weights sha256, first 16 digits>/<settings key>/, one JSON file per channel and a PNG strip
of its frames side by side (the last frame is the image), so new weights or other settings
never meet an old picture. The JSON names its strip ("strip"; absent in entries written
before: then <name>.png; in those of the first recipe a relu or pool channel names its conv
channel's) and lists the steps of the frames the strip holds: `convscope visualize
--frames N` keeps only a few frames of each ascent, so the precomputed pictures stay small.
An index made for other weights is not served but reported stale, with the command that
rebuilds it.

Files are written under a temporary name and renamed, so a reader sees a whole entry or
none; two requests for the same missing picture may both compute it (the same bytes).
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, Request

from app import render
from app.registry import ServedModel, weights_digest
from model.channels import INDEXED_KINDS, VisSettings, Visualization, visualize
from model.channels.files import read_index, read_sprite
from model.weights import SHIPPED_DIR

SPRITES_KEPT = 6  # decoded sprite sheets held in memory (cifar10's largest is 4.5 MB)


class ChannelError(Exception):
    """A request for something that is not there; status and a sentence for the client."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


def index_command(model_id: str) -> str:
    return f"convscope index --model {model_id} --data PATH"


@dataclass
class IndexStatus:
    status: str  # "ok", "stale" or "missing"
    detail: str
    document: dict[str, Any] | None = None


class ChannelViews:
    def __init__(self, channels_dir: Path | None, cache_dir: Path):
        self.channels_dir = Path(channels_dir) if channels_dir else SHIPPED_DIR
        self.cache_dir = Path(cache_dir)
        self._indexes: dict[Path, tuple[int, dict[str, Any]]] = {}
        self._sprites: OrderedDict[tuple[Path, int], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        # Visualisations being computed now, by their key (app/api/channels.py).
        self.being_made: dict[tuple, Any] = {}

    # --- the model and its layers ---------------------------------------------------------

    def weights_sha256(self, served: ServedModel) -> str:
        return weights_digest(served.network)

    def model_dir(self, model_id: str) -> Path:
        return self.channels_dir / f"{model_id}.channels"

    @staticmethod
    def check_channel(served: ServedModel, index: int, channel: int) -> None:
        layers = served.network.layers
        if not 0 <= index < len(layers):
            raise ChannelError(
                404,
                f"Model {served.id} has layers 0 to {len(layers) - 1}; there is no layer {index}.",
            )
        layer = layers[index]
        if layer.kind not in INDEXED_KINDS:
            raise ChannelError(
                422,
                f"Layer {index} ({layer.name}) is a {layer.kind} layer: its units are not "
                "channels of a volume that slides over the image, so it has no channels to "
                "show; only conv, relu and pool layers do.",
            )
        depth = layer.output_shape[2]
        if not 0 <= channel < depth:
            raise ChannelError(
                404,
                f"Layer {index} ({layer.name}) has channels 0 to {depth - 1}; "
                f"there is no channel {channel}.",
            )

    # --- the top-patch index ----------------------------------------------------------------

    def index_status(self, served: ServedModel) -> IndexStatus:
        path = self.model_dir(served.id) / "index.json"
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            return IndexStatus(
                "missing",
                f"Model {served.id} has no index of top dataset patches yet: build it with "
                f"`{index_command(served.id)}`.",
            )
        with self._lock:
            cached = self._indexes.get(path)
        if cached is None or cached[0] != mtime:
            try:
                document = read_index(path.parent)
            except (ValueError, OSError) as error:
                return IndexStatus(
                    "missing",
                    f"The index of {served.id} cannot be read ({error}); rebuild it "
                    f"with `{index_command(served.id)}`.",
                )
            with self._lock:
                self._indexes[path] = (mtime, document)
        else:
            document = cached[1]
        served_hash = self.weights_sha256(served)
        if document.get("weights_sha256") != served_hash:
            return IndexStatus(
                "stale",
                f"The index of top dataset patches of {served.id} was made for other weights "
                f"(sha256 {str(document.get('weights_sha256'))[:12]}…; the served weights are "
                f"{served_hash[:12]}…), so it is not shown: rebuild it with "
                f"`{index_command(served.id)}`.",
                document,
            )
        return IndexStatus(
            "ok",
            f"Top {document['top']} patches over {document['dataset']['count']} images.",
            document,
        )

    def index(self, served: ServedModel) -> dict[str, Any]:
        status = self.index_status(served)
        if status.status == "missing":
            raise ChannelError(404, status.detail)
        if status.status == "stale":
            raise ChannelError(409, status.detail)
        return status.document

    def layer_entry(self, served: ServedModel, index: int) -> dict[str, Any]:
        document = self.index(served)
        for layer in document["layers"]:
            if layer["index"] == index:
                return layer
        raise ChannelError(
            404,
            f"The index of {served.id} has no entry for layer {index}; rebuild it with "
            f"`{index_command(served.id)}`.",
        )

    def examples(self, served: ServedModel, index: int, channel: int) -> list[dict[str, Any]]:
        document = self.index(served)
        layer = self.layer_entry(served, index)
        images = document["images"]
        classes = document.get("classes") or served.network.classes
        out = []
        for rank, (slot, row, col, value) in enumerate(layer["channels"][channel]):
            image = images[slot]
            label = image["label"]
            out.append(
                {
                    "rank": rank,
                    "path": image["path"],
                    "label": classes[label] if 0 <= label < len(classes) else str(label),
                    "label_index": label,
                    "row": row,
                    "col": col,
                    "value": value,
                }
            )
        return out

    def patch_png(self, served: ServedModel, index: int, channel: int, rank: int) -> bytes:
        layer = self.layer_entry(served, index)
        count = len(layer["channels"][channel])
        if not 0 <= rank < count:
            raise ChannelError(
                404,
                f"Channel {channel} of layer {index} has examples 0 to {count - 1}; "
                f"there is no example {rank}.",
            )
        sheet = self._sprite(self.model_dir(served.id) / layer["sprite"])
        size = layer["patch_size"]
        cell = sheet[channel * size : (channel + 1) * size, rank * size : (rank + 1) * size]
        return render.encode_png(cell[:, :, 0] if cell.shape[2] == 1 else cell)

    def _sprite(self, path: Path) -> np.ndarray:
        try:
            key = (path, path.stat().st_mtime_ns)
        except FileNotFoundError:
            raise ChannelError(
                404, f"The index's picture {path.name} is missing; rebuild the index."
            ) from None
        with self._lock:
            if key in self._sprites:
                self._sprites.move_to_end(key)
                return self._sprites[key]
        sheet = read_sprite(path)
        with self._lock:
            self._sprites[key] = sheet
            while len(self._sprites) > SPRITES_KEPT:
                self._sprites.popitem(last=False)
        return sheet

    # --- feature visualisations -------------------------------------------------------------

    def _relative(self, served: ServedModel, index: int, channel: int, settings: VisSettings):
        return (
            Path(self.weights_sha256(served)[:16]) / settings.key(),
            f"{index:02d}-{channel:03d}",
        )

    def etag(self, served: ServedModel, index: int, channel: int, settings: VisSettings) -> str:
        folder, name = self._relative(served, index, channel, settings)
        return f'"{folder.as_posix().replace("/", "-")}-{name}"'

    def find_visualization(
        self,
        served: ServedModel,
        index: int,
        channel: int,
        settings: VisSettings,
        roots: list[Path] | None = None,
    ) -> tuple[dict[str, Any], Path] | None:
        """(the JSON, the frames PNG) if this picture was made before, else None; looked
        for beside the weights, then in the cache (or in `roots`)."""
        folder, name = self._relative(served, index, channel, settings)
        for root in roots or self._roots(served):
            try:
                meta = json.loads((root / folder / f"{name}.json").read_text())
            except (FileNotFoundError, ValueError):
                continue
            strip = root / folder / meta.get("strip", f"{name}.png")
            if strip.is_file():
                return meta, strip
        return None

    def _roots(self, served: ServedModel) -> list[Path]:
        return [self.model_dir(served.id) / "visualizations", self.cache_dir / served.id]

    def make_visualization(
        self,
        served: ServedModel,
        index: int,
        channel: int,
        settings: VisSettings,
        on_frame=None,
        root: Path | None = None,
        keep_frames: int | None = None,
    ) -> tuple[dict[str, Any], Path]:
        """Compute and store one visualisation (runs on a compute thread); keep_frames
        thins the frames stored (`Visualization.thinned`)."""
        folder, name = self._relative(served, index, channel, settings)
        target = (root or self.cache_dir / served.id) / folder
        result = visualize(served.network, index, channel, settings, on_frame)
        if keep_frames:
            result = result.thinned(keep_frames)
        meta = write_visualization(target, name, result, self.weights_sha256(served))
        return meta, target / meta["strip"]

    @staticmethod
    def frame_png(strip: Path, frame: int | None = None) -> bytes:
        """One frame of a stored strip (default: the last, the visualisation itself)."""
        pixels = read_sprite(strip)
        width = pixels.shape[0]
        count = pixels.shape[1] // width
        k = count - 1 if frame is None else frame
        cell = pixels[:, k * width : (k + 1) * width]
        return render.encode_png(cell[:, :, 0] if cell.shape[2] == 1 else cell)


def read_frames(strip: Path, count: int) -> np.ndarray:
    """A stored strip's `count` frames, (F, H, W, C) uint8."""
    pixels = read_sprite(strip)
    h, width, c = pixels.shape
    return pixels.reshape(h, count, width // count, c).transpose(1, 0, 2, 3)


def write_visualization(
    folder: Path, name: str, result: Visualization, weights_hash: str
) -> dict[str, Any]:
    """<name>.json and <name>.png (the frames side by side, the image last)."""
    folder.mkdir(parents=True, exist_ok=True)
    strip = f"{name}.png"
    pixels = np.concatenate(list(result.frames), axis=1)
    _replace(folder / strip, render.encode_png(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels))
    meta = {
        "layer": result.layer,
        "channel": result.channel,
        "activation": result.activation,
        "start_activation": result.start_activation,
        "steps": result.settings.steps,
        "settings": vars(result.settings) | {"key": result.settings.key()},
        "weights_sha256": weights_hash,
        "frames": {"steps": result.frame_steps, "activations": result.frame_activations},
        "strip": strip,
    }
    _replace(folder / f"{name}.json", json.dumps(meta).encode())
    return meta


def _replace(path: Path, data: bytes) -> None:
    partial = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
    partial.write_bytes(data)
    partial.replace(path)


async def get_channel_views(request: Request) -> ChannelViews:
    """The app's ChannelViews, made on first use from its settings."""
    state = request.app.state
    views = getattr(state, "channel_views", None)
    if views is None:
        settings = state.settings
        views = state.channel_views = ChannelViews(
            settings.channels_dir, settings.channel_cache_dir
        )
    return views


ChannelViewsDep = Annotated[ChannelViews, Depends(get_channel_views)]
