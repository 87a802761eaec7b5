"""The NDJSON lines of a forward run: one JSON object per line, each with a "type".

    {"type": "run", "id", "model", "trained", "classes", "layer_count", "input": {...}}
    {"type": "layer", "index", "name", "kind", "shape", "stats", "encoding": "uint8",
     "uint8-split" or "uint8-predicted", "layout": "DHW", "scale": {"min", "max"},
     "data": base64, "elapsed_ms"}                    (one per layer; "prediction" with
                                                       "uint8-predicted")
    {"type": "scores", "probabilities", "top", "elapsed_ms"}
    {"type": "error", "detail"}                       (instead, if the run fails midway)

A layer's numbers travel as one byte each: q = round((v - min) / (max - min) * 255), so
v ~= min + q / 255 * (max - min), off by at most half a step, (max - min) / 510 (a 256-step
colour map shows no more); `/api/runs/{id}/layers/{i}.json` has the exact values. The bytes
q, depth slice after depth slice, are written in one of three ways, the client's choice
(`?encoding=` on the forward and replay routes):

- "uint8" (the default): standard base64 of the bytes.
- "uint8-split" (what the page asks for): the same base64 alphabet, but byte-aligned, so
  that an HTTP compressor sees the numbers' own distribution: first one character per
  number holding its top six bits (ALPHABET[q >> 2]), then one character per three numbers
  holding their low two bits (ALPHABET[l0 << 4 | l1 << 2 | l2], the last group padded with
  zeros). As long as base64; with gzip a cifar10 run goes from 335 KB to 168-182 KB
  (gzip of plain base64: 181-190 KB).
- "uint8-predicted" (what the page asks for): as "uint8-split", except that a ReLU line
  that follows a layer of its shape, or a pool line that halves the layer before it, says
  `"encoding": "uint8-predicted", "prediction": "relu"` or `"max2x2"` and carries, one
  character per number, the difference between its bytes and what the previous line's
  bytes predict (app/prediction.py has the arithmetic, which a client repeats exactly).
  The same bytes q in the end, so the same error bound; with gzip a cifar10 run takes
  124-131 KB, an mnist one 27-36 KB.

Either can be sent compressed: a client whose Accept-Encoding allows gzip gets
`Content-Encoding: gzip`, one gzip stream for the response, flushed (Z_SYNC_FLUSH) after
every line, so each line can be decoded the moment it arrives. Others get plain NDJSON.
The gzip is ISA-L's (the `isal` binding): the same format as zlib's at a third of its CPU
(BENCHMARKS.md, "The server path").
"""

from __future__ import annotations

import base64
import functools
import json
import math
from typing import Any

import numpy as np
from isal import isal_zlib

from app import prediction
from app.inference import stats
from app.record import RunRecord

MEDIA_TYPE = "application/x-ndjson"
ENCODINGS = ("uint8", "uint8-split", "uint8-predicted")
ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_CHARS = np.frombuffer(ALPHABET, np.uint8)
_VALUES = np.full(256, 255, np.uint8)
_VALUES[_CHARS] = np.arange(64, dtype=np.uint8)
# bytes.translate tables (a byte -> a character in one C pass; numpy's take would first widen
# every uint8 index to 8 bytes): the character of a byte's top six bits, and of a value 0-63.
_TOP = bytes(_CHARS[np.arange(256) >> 2])
_SIXTY_FOUR = ALPHABET + bytes(192)
# One encoder for every line: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def dumps(message: dict[str, Any]) -> bytes:
    """One NDJSON line. NaN and infinity are refused: they are not JSON."""
    return _ENCODER.encode(message).encode() + b"\n"


def quantize(volume: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(H, W, D) float -> (D, H, W) uint8, C order, on the lo..hi range, which must be the
    volume's own min and max; zeros when hi == lo."""
    if not hi > lo:
        return np.zeros(volume.shape[2:] + volume.shape[:2], np.uint8)
    # (v - lo) * k + 0.5 in one float buffer in the volume's own order; only the bytes are
    # transposed, a quarter of the memory traffic of transposing the floats. With lo and hi
    # the volume's own min and max the sums lie in [0.5, 255.5 + a rounding error], which
    # the cast truncates to 0..255: no clipping pass for float32 volumes (a float64 one is
    # rounded to float32 first, which can widen a tiny range: that one is clipped).
    scaled = np.subtract(volume, np.float32(lo), dtype=np.float32)
    scaled *= np.float32(255 / (hi - lo))
    scaled += np.float32(0.5)
    if volume.dtype != np.float32:
        np.clip(scaled, 0, 255, out=scaled)
    return np.ascontiguousarray(scaled.astype(np.uint8).transpose(2, 0, 1))


def split(q: np.ndarray) -> bytes:
    """uint8 numbers -> the "uint8-split" text (module docstring): top six bits, then low two."""
    q = q.reshape(-1)
    low = np.zeros(-(-q.size // 3) * 3, np.uint8)
    np.bitwise_and(q, 3, out=low[: q.size])
    groups = low.reshape(-1, 3)
    packed = groups[:, 0] << 4
    packed |= groups[:, 1] << 2
    packed |= groups[:, 2]
    return q.tobytes().translate(_TOP) + packed.tobytes().translate(_SIXTY_FOUR)


def unsplit(text: str | bytes, count: int) -> np.ndarray:
    """The "uint8-split" text of `count` numbers back to uint8; ValueError if malformed."""
    chars = np.frombuffer(text.encode() if isinstance(text, str) else text, np.uint8)
    groups = -(-count // 3)
    if chars.size != count + groups:
        raise ValueError(f"{chars.size} characters cannot hold {count} split numbers")
    values = _VALUES[chars]
    if (values == 255).any():
        raise ValueError("a character outside the base64 alphabet")
    packed = values[count:]
    low = np.stack([packed >> 4, (packed >> 2) & 3, packed & 3], 1).reshape(-1)[:count]
    return (values[:count] << 2) | low


def volume_bytes(message: dict[str, Any], previous: dict[str, Any] | None = None) -> np.ndarray:
    """A layer line's quantised numbers q, uint8 (D, H, W), in any encoding; a
    "uint8-predicted" line needs the line before it, `previous`, with its "q" added
    (LayerReader does that for a whole stream)."""
    height, width, depth = message["shape"]
    count = height * width * depth
    if message["encoding"] == "uint8-predicted":
        if previous is None or "q" not in previous:
            raise ValueError("a predicted line needs the line before it")
        predicted = prediction.predict(
            message["prediction"], previous["q"], _scale(previous), _scale(message)
        )
        return prediction.undo(message["data"].encode(), predicted, _VALUES)
    if message["encoding"] == "uint8-split":
        q = unsplit(message["data"], count)
    else:
        q = np.frombuffer(base64.b64decode(message["data"]), np.uint8)
    return q.reshape(depth, height, width)


def _scale(message: dict[str, Any]) -> tuple[float, float]:
    return message["scale"]["min"], message["scale"]["max"]


def dequantize(message: dict[str, Any], q: np.ndarray | None = None) -> np.ndarray:
    """A layer line's volume back as float32 (H, W, D), as a client would decode it (from
    its bytes `q` when given: a predicted line's need the line before)."""
    q = volume_bytes(message) if q is None else q
    lo, hi = _scale(message)
    return (lo + q.astype(np.float32) / 255 * (hi - lo)).transpose(1, 2, 0).astype(np.float32)


class LayerReader:
    """Decodes a stream's layer lines in order; each message gets its bytes as "q"."""

    def __init__(self) -> None:
        self._previous: dict[str, Any] | None = None

    def __call__(self, message: dict[str, Any]) -> np.ndarray:
        message["q"] = volume_bytes(message, self._previous)
        self._previous = message
        return message["q"]


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an Accept-Encoding header allows gzip (RFC 9110: a q of 0 refuses it)."""
    for item in (accept_encoding or "").lower().split(","):
        name, _, params = item.strip().partition(";")
        if name.strip() in ("gzip", "x-gzip", "*"):
            q = params.strip().removeprefix("q=").strip() if "q=" in params else "1"
            try:
                return float(q) > 0
            except ValueError:
                return False
    return False


class Gzip:
    """One response's gzip stream, flushed after every chunk so nothing waits in it.

    ISA-L at level 1: on a cifar10 run 1.0 ms of CPU for 120 KB, where zlib's fastest
    setting (level 1, run-length strategy) took 3.2 ms for 128 KB; ISA-L's level 3 saves
    0.3% more at 1.7x the CPU. About 60 KB of memory per open stream."""

    headers = {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}

    def __init__(self) -> None:
        self._gzip = isal_zlib.compressobj(1, isal_zlib.DEFLATED, 16 + 15)

    def __call__(self, chunk: bytes) -> bytes:
        return self._gzip.compress(chunk) + self._gzip.flush(isal_zlib.Z_SYNC_FLUSH)

    def end(self) -> bytes:
        return self._gzip.flush(isal_zlib.Z_FINISH)


class Plain:
    headers = {"Vary": "Accept-Encoding"}

    def __call__(self, chunk: bytes) -> bytes:
        return chunk

    def end(self) -> bytes:
        return b""


def compressor(accept_encoding: str | None) -> Gzip | Plain:
    """How a response's lines go on the wire, for a request's Accept-Encoding."""
    return Gzip() if accepts_gzip(accept_encoding) else Plain()


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


class LayerLines:
    """The layer lines of one run, in order, in `encoding` (one of ENCODINGS): a
    "uint8-predicted" line is predicted from the line before it."""

    def __init__(self, encoding: str = "uint8"):
        self.encoding = encoding
        self._previous: tuple[np.ndarray, tuple[float, float], list[int]] | None = None

    def __call__(
        self,
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
        shape = list(volume.shape)
        q = quantize(volume, lo, hi)
        encoding, data, extra = self._encode(q, kind, shape, (lo, hi))
        prediction_field = f',"prediction":"{extra["prediction"]}"' if extra else ""
        # The line is written out by hand, as json.dumps would write it (the same bytes):
        # its fixed start once per layer, the rest from numbers; base64 needs no escaping.
        head = "".join(
            (
                _layer_start(index, name, kind, tuple(shape)),
                ',"stats":{',
                ",".join(f"{_key(key)}:{_number(value)}" for key, value in layer_stats.items()),
                f'}},"encoding":"{encoding}"{prediction_field},"layout":"DHW",',
                f'"scale":{{"min":{_number(lo)},"max":{_number(hi)}}},',
                f'"elapsed_ms":{_number(round(elapsed_ms, 3))},"data":"',
            )
        )
        return b"".join((head.encode(), data, b'"}\n'))

    def _encode(
        self, q: np.ndarray, kind: str, shape: list[int], scale: tuple[float, float]
    ) -> tuple[str, bytes, dict[str, str]]:
        previous, self._previous = self._previous, (q, scale, shape)
        if self.encoding == "uint8":
            return "uint8", base64.b64encode(q), {}
        if self.encoding == "uint8-predicted" and previous is not None and scale[1] > scale[0]:
            previous_q, previous_scale, previous_shape = previous
            if how := prediction.how(kind, shape, previous_shape):
                predicted = prediction.predict(how, previous_q, previous_scale, scale)
                if (text := prediction.difference(q, predicted, _SIXTY_FOUR)) is not None:
                    return "uint8-predicted", text, {"prediction": how}
        return "uint8-split", split(q), {}


@functools.lru_cache(maxsize=4096)
def _layer_start(index: int, name: str, kind: str, shape: tuple[int, ...]) -> str:
    fields = {"type": "layer", "index": index, "name": name, "kind": kind, "shape": list(shape)}
    return dumps(fields)[:-2].decode()  # without the closing brace and newline


@functools.lru_cache(maxsize=256)
def _key(key: str) -> str:
    return _ENCODER.encode(key)


def _number(value: float) -> str:
    """A number as json writes it; ValueError for NaN and infinity, which are not JSON."""
    if not math.isfinite(value):
        raise ValueError(f"{value!r} is not a JSON number")
    return float.__repr__(value) if isinstance(value, float) else int.__repr__(value)


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
