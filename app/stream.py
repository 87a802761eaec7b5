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

MEDIA_TYPE = "application/x-ndjson"
TOP_CLASSES = 5


def dumps(message: dict[str, Any]) -> bytes:
    """One NDJSON line. NaN and infinity are refused: they are not JSON."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def stats(volume: np.ndarray) -> dict[str, float]:
    """min, max, mean, std and the fraction of exact zeros of a volume."""
    mean = float(volume.mean(dtype=np.float64))
    centred = (volume - np.float32(mean)).ravel()
    return {
        "min": float(volume.min()),
        "max": float(volume.max()),
        "mean": mean,
        "std": float(np.sqrt(np.dot(centred, centred) / volume.size)),
        "zeros": 1.0 - np.count_nonzero(volume) / volume.size,
    }


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


def run_line(
    run_id: str,
    model_id: str,
    trained: bool,
    classes: list[str],
    layer_count: int,
    pixels: np.ndarray,
) -> bytes:
    """The first line: what the run is, and the preprocessed input pixels (H, W, D) uint8."""
    return dumps(
        {
            "type": "run",
            "id": run_id,
            "model": model_id,
            "trained": trained,
            "classes": classes,
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


def probabilities(last: np.ndarray, is_softmax: bool) -> np.ndarray:
    """Class probabilities (float64, summing to 1) from the last layer's volume."""
    scores = last.reshape(-1).astype(np.float64)
    if not is_softmax:
        scores = np.exp(scores - scores.max())
    return scores / scores.sum()


def top(probs: np.ndarray, classes: list[str], k: int = TOP_CLASSES) -> list[dict[str, Any]]:
    order = np.argsort(-probs, kind="stable")[:k]
    return [
        {
            "index": int(i),
            "class": classes[i] if i < len(classes) else str(i),
            "probability": float(probs[i]),
        }
        for i in order
    ]


def scores_line(probs: np.ndarray, best: list[dict[str, Any]], elapsed_ms: float) -> bytes:
    return dumps(
        {
            "type": "scores",
            "probabilities": [float(p) for p in probs],
            "top": best,
            "elapsed_ms": round(elapsed_ms, 3),
        }
    )


def error_line(detail: str) -> bytes:
    return dumps({"type": "error", "detail": detail})
