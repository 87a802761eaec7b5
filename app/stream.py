"""The NDJSON lines of a forward run: one JSON object per line, each with a "type".

    {"type": "run", "id", "model", "trained", "classes", "layer_count", "input": {...}}
    {"type": "layer", "index", "name", "kind", "shape", "stats", "encoding": "uint8",
     "layout": "DHW", "scale": {"min", "max"}, "data": base64, "elapsed_ms"}   (one per layer)
    {"type": "scores", "probabilities", "top", "elapsed_ms"}
    {"type": "error", "detail"}                       (instead, if the run fails midway)

A layer's numbers travel as one byte each: q = round((v - min) / (max - min) * 255), so
v ~= min + q / 255 * (max - min), off by at most half a step, (max - min) / 510. That keeps
a cifar10 run near 330 KB; `/api/runs/{id}/layers/{i}.json` has the exact values.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np

from app.inference import stats
from app.record import RunRecord

MEDIA_TYPE = "application/x-ndjson"


def dumps(message: dict[str, Any]) -> bytes:
    """One NDJSON line. NaN and infinity are refused: they are not JSON."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def quantize(volume: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(H, W, D) float -> (D, H, W) uint8 on the lo..hi range; all zeros when hi == lo."""
    dhw = volume.transpose(2, 0, 1)
    if not hi > lo:
        return np.zeros(dhw.shape, np.uint8)
    scaled = (dhw - np.float32(lo)) * np.float32(255 / (hi - lo)) + np.float32(0.5)
    return np.clip(scaled, 0, 255).astype(np.uint8)


def dequantize(message: dict[str, Any]) -> np.ndarray:
    """A layer line's volume back as float32 (H, W, D), as a client would decode it."""
    height, width, depth = message["shape"]
    q = np.frombuffer(base64.b64decode(message["data"]), np.uint8).reshape(depth, height, width)
    lo, hi = message["scale"]["min"], message["scale"]["max"]
    return (lo + q.astype(np.float32) / 255 * (hi - lo)).transpose(1, 2, 0).astype(np.float32)


def b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def run_line(record: RunRecord, layer_count: int, pixels: np.ndarray) -> bytes:
    """The first line: what the run is, and the preprocessed input pixels (H, W, D) uint8."""
    return dumps(
        {
            "type": "run",
            "id": record.id,
            "model": record.model,
            "trained": record.trained,
            "classes": record.classes,
            "layer_count": layer_count,
            "input": {
                "shape": list(pixels.shape),
                "encoding": "uint8",
                "layout": "HWD",
                "data": b64(pixels),
            },
        }
    )


def layer_line(
    index: int,
    name: str,
    kind: str,
    volume: np.ndarray,
    elapsed_ms: float,
    layer_stats: dict[str, float] | None = None,
) -> bytes:
    """One layer's volume (H, W, D) float32, quantised to a byte per number."""
    layer_stats = layer_stats or stats(volume)
    lo, hi = layer_stats["min"], layer_stats["max"]
    head = dumps(
        {
            "type": "layer",
            "index": index,
            "name": name,
            "kind": kind,
            "shape": list(volume.shape),
            "stats": layer_stats,
            "encoding": "uint8",
            "layout": "DHW",
            "scale": {"min": lo, "max": hi},
            "elapsed_ms": round(elapsed_ms, 3),
        }
    )
    # Base64 needs no JSON escaping: splice it in rather than have json scan it again.
    data = base64.b64encode(quantize(volume, lo, hi).tobytes())
    return head[:-2] + b',"data":"' + data + b'"}\n'


def scores_line(record: RunRecord, elapsed_ms: float) -> bytes:
    """The last line: the record's probabilities and top classes."""
    return dumps(
        {
            "type": "scores",
            "probabilities": record.probabilities,
            "top": [best.model_dump(by_alias=True) for best in record.top],
            "elapsed_ms": round(elapsed_ms, 3),
        }
    )


def error_line(detail: str) -> bytes:
    return dumps({"type": "error", "detail": detail})
