"""GET /api/runs/{run}/layers/{i}/neurons/{row}/{col}/{depth}: how one number of a stored
run was computed, broken into its parts by model/arithmetic.py.

The parts come from the run's stored volumes (the layer's input: the previous layer's
volume, or the preprocessed image for layer 0) and the served model's weights; "value" is
the stored number itself, exactly the one layers/{i}.json gives, and "agrees" says whether
the parts add up to it within float32 rounding (they do, unless the model's weights changed
after the run was made).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union, get_args

import numpy as np
from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app.api.runs import cache_headers, layer_reader, read_run
from app.errors import error
from app.registry import RegistryDep
from app.run_volumes import RunVolumes, RunVolumesDep
from app.runs import RunStoreDep, StoredRun
from model import arithmetic

router = APIRouter(prefix="/api/runs", tags=["runs"])

Position = Annotated[
    int, Path(ge=0, description="Index along the volume's height, width or depth.")
]
HalfOpen = Annotated[list[int], Field(min_length=2, max_length=2, description="[start, end).")]


class InputWindow(BaseModel):
    layer: int = Field(description="The volume read: layer i - 1, or -1 for the network input.")
    name: str = Field(description="That volume's name (the layer's, or 'input').")
    shape: list[int] = Field(description="Its [H, W, D].")
    rows: HalfOpen
    cols: HalfOpen = Field(description="May run past the volume's edges where the layer pads.")


class WeightCount(BaseModel):
    neuron: int = Field(description="This neuron's weights and bias: kh * kw * C + 1 for conv.")
    fully_connected: int = Field(description="A fully connected neuron's on the same input.")


class NeuronBase(BaseModel):
    run: str
    layer: int
    name: str
    position: list[int] = Field(description="[row, col, depth]; an fc or softmax volume is 1x1xD.")
    value: float = Field(description="The stored float32 number, exactly as in layers/{i}.json.")
    recomputed: float = Field(description="The same number added up again from the parts.")
    tolerance: float = Field(description="How far float32 rounding may put value from it.")
    agrees: bool = Field(description="|value - recomputed| <= tolerance.")
    input: InputWindow
    receptive_field: dict[str, HalfOpen] = Field(
        description="The network input's pixels the neuron sees: {rows, cols}, clipped."
    )


class ConvNeuron(NeuronBase):
    kind: Literal["conv"]
    window: list[list[list[float]]] = Field(
        description="[row][col][channel]: the kh x kw x C input numbers read, 0 where padding."
    )
    weights: list[list[list[float]]] = Field(description="Filter `depth`, [row][col][channel].")
    bias: float
    channel_sums: list[float] = Field(
        description="Per input channel c: sum(window[:, :, c] * weights[:, :, c]); "
        "value = bias + sum(channel_sums)."
    )
    weight_count: WeightCount


class ReluNeuron(NeuronBase):
    kind: Literal["relu"]
    input_value: float = Field(description="value = max(0, input_value).")


class PoolNeuron(NeuronBase):
    kind: Literal["pool"]
    window: list[list[float]] = Field(description="kh x kw numbers of input channel `depth`.")
    argmax: list[int] = Field(description="[r, c] of the maximum inside the window (the first).")


class Term(BaseModel):
    index: int = Field(description="Into terms.")
    position: list[int] = Field(description="[row, col, depth] in the input volume.")
    input: float
    weight: float
    term: float = Field(description="input * weight.")


class FcNeuron(NeuronBase):
    kind: Literal["fc"]
    bias: float
    terms: list[float] = Field(
        description="Every input number times its weight, flattened depth-major (D, H, W) as "
        "the layer flattens; value = bias + sum(terms)."
    )
    top: list[Term] = Field(description="The largest terms by magnitude, largest first.")
    weight_count: WeightCount


class SoftmaxNeuron(NeuronBase):
    kind: Literal["softmax"]
    logits: list[float] = Field(description="Every class's input number.")
    shift: float = Field(description="0, or the largest logit where exp would overflow.")
    exps: list[float] = Field(description="exp(logits - shift).")
    sum: float = Field(description="sum(exps); value = exps[depth] / sum.")


# --- the general kinds of imported networks -------------------------------------------


class Conv2dNeuron(ConvNeuron):
    kind: Literal["conv2d"]  # type: ignore[assignment]
    window: list[list[list[float]]] = Field(
        description="[row][col][channel]: the kh x kw x C' input numbers the filter reads, "
        "every dilation-th one from the window's corner (input.rows[0], input.cols[0]), 0 where "
        "padding; C' is every input channel, or the one a depthwise filter reads."
    )
    input_channels: list[int] = Field(
        description="The input channel each of the window's channels is: 0 to C - 1, or the "
        "one channel depth // (filters / C) a depthwise filter reads."
    )
    stride: list[int] = Field(description="[rows, cols] the filter moves between neurons.")
    dilation: list[int] = Field(description="[rows, cols] between the numbers it reads.")


class MaxpoolNeuron(NeuronBase):
    kind: Literal["maxpool"]
    window: list[list[float | None]] = Field(
        description="kh x kw numbers of input channel `depth`; null where the window pads "
        "(padding is -infinity: it never wins)."
    )
    argmax: list[int] = Field(description="[r, c] of the maximum inside the window (the first).")


class AvgpoolNeuron(NeuronBase):
    kind: Literal["avgpool"]
    window: list[list[float]] = Field(
        description="kh x kw numbers of input channel `depth`, 0 where padding."
    )
    counted: list[list[bool]] = Field(description="Whether each place counts in the divisor.")
    count: int = Field(description="The divisor: sum(counted).")
    count_include_pad: bool = Field(
        description="Whether padding counts (ceil_mode's overhang past the padding never does)."
    )
    sum: float = Field(description="sum(window); value = sum / count.")


class GapNeuron(NeuronBase):
    kind: Literal["gap"]
    window: list[list[float]] = Field(
        description="The first numbers of input channel `depth`, at most 12 x 12 (rows "
        "window_rows, cols window_cols); the whole channel (input.rows, input.cols) is "
        "summed, and layers/{i-1}.npy?slice={depth} has every number of it."
    )
    window_rows: HalfOpen
    window_cols: HalfOpen
    count: int = Field(description="H * W, the channel's numbers.")
    sum: float = Field(description="The sum of the whole H x W channel (float64).")
    mean: float = Field(description="sum / count = recomputed, the channel's mean.")


class BatchnormNeuron(NeuronBase):
    kind: Literal["batchnorm"]
    input_value: float = Field(description="x.")
    mean: float = Field(description="The channel's running mean.")
    var: float = Field(description="The channel's running variance.")
    eps: float
    gamma: float = Field(description="The channel's scale (PyTorch's weight).")
    beta: float = Field(description="The channel's shift (PyTorch's bias).")
    std: float = Field(description="sqrt(var + eps).")
    normalized: float = Field(description="(x - mean) / std; value = gamma * normalized + beta.")


class LeakyreluNeuron(NeuronBase):
    kind: Literal["leakyrelu"]
    input_value: float = Field(description="x; value = x if x > 0, else alpha * x.")
    alpha: float


class SquashNeuron(NeuronBase):
    kind: Literal["sigmoid", "tanh"]
    input_value: float = Field(
        description="x; value = 1 / (1 + exp(-x)) for sigmoid, tanh(x) for tanh."
    )


class FlattenNeuron(NeuronBase):
    kind: Literal["flatten"]
    source: list[int] = Field(
        description="[row, col, depth] of the input number copied here (depth-major, as "
        "torch.flatten on NCHW: position depth = d * H * W + row * W + col)."
    )


class LogsoftmaxNeuron(NeuronBase):
    kind: Literal["logsoftmax"]
    logits: list[float] = Field(description="Every class's input number.")
    max: float = Field(description="The largest logit.")
    exps: list[float] = Field(description="exp(logits - max).")
    sum: float = Field(description="sum(exps).")
    logsumexp: float = Field(description="max + log(sum); value = logits[depth] - logsumexp.")


KINDS = (
    ConvNeuron,
    ReluNeuron,
    PoolNeuron,
    FcNeuron,
    SoftmaxNeuron,
    Conv2dNeuron,
    MaxpoolNeuron,
    AvgpoolNeuron,
    GapNeuron,
    BatchnormNeuron,
    LeakyreluNeuron,
    SquashNeuron,
    FlattenNeuron,
    LogsoftmaxNeuron,
)
Neuron = Annotated[Union[KINDS], Field(discriminator="kind")]  # noqa: UP007
PARTS = {kind: model for model in KINDS for kind in get_args(model.model_fields["kind"].annotation)}


def _volumes(run_id: str, index: int, volumes: RunVolumes):
    """What a neuron's arithmetic reads from the run: the layer's volume and facts, its
    input volume (float, as the layer saw it) or the raw pixels, and the model's id."""
    layer = layer_reader(run_id, index, volumes)

    def read(run: StoredRun) -> tuple[np.ndarray, dict, np.ndarray, str]:
        volume, info = layer(run)
        before = volumes.layer(run, index - 1) if index > 0 else run.pixels()
        return volume, info, before, run.meta["model"]

    return read


@router.get(
    "/{run_id}/layers/{index}/neurons/{row}/{col}/{depth}",
    response_model=Neuron,
    responses={
        404: error("No such run (or it expired), layer or neuron."),
        422: error("A negative or non-integer position, or a layer kind not broken down."),
    },
)
def get_neuron(
    store: RunStoreDep,
    volumes: RunVolumesDep,
    registry: RegistryDep,
    run_id: str,
    index: int,
    row: Position,
    col: Position,
    depth: Position,
) -> Any:
    """How one number of the run was computed: the input window it reads and, by layer kind,
    conv: the window, the filter, one partial sum per input channel and the bias; relu: its
    input; pool: the window and its maximum; fc: every input times its weight; softmax: the
    logits, their exponentials and their sum. An imported model's kinds: conv2d as conv (any
    kernel, stride, padding, dilation; a depthwise filter reads one input channel); maxpool
    (padding never wins) and avgpool (with the divisor's count); gap: the channel and its
    mean; batchnorm: x, mean, var, eps, gamma, beta; leakyrelu, sigmoid, tanh: the input (and
    alpha); flatten: the place copied; logsoftmax: the logits, max and logsumexp."""
    read = _volumes(run_id, index, volumes)
    (volume, info, before, model_id), expires = read_run(store, run_id, read)
    h, w, d = volume.shape
    if not (row < h and col < w and depth < d):
        raise HTTPException(
            404,
            f"Layer {index} ({info['name']}) is {h}x{w}x{d}: rows 0 to {h - 1}, cols 0 to "
            f"{w - 1}, depth 0 to {d - 1}; there is no neuron at ({row}, {col}, {depth}).",
        )
    try:
        net = registry.get(model_id).network
    except LookupError:
        net = None
    if net is None or len(net.layers) <= index or net.layers[index].name != info["name"]:
        raise HTTPException(
            404,
            f"Run {run_id} was made by model {model_id}, which this server no longer serves "
            "as it was; upload the image again.",
        )
    layer = net.layers[index]
    if index == 0:
        before = net.preprocess(before[None])[0]
    try:
        parts = arithmetic.neuron(layer, before, row, col, depth)
    except arithmetic.NotExplained as problem:
        raise HTTPException(422, f"{problem}.") from None
    value = float(volume[row, col, depth])
    recomputed = parts.pop("value")
    tolerance = parts.pop("tolerance")
    bh, bw, bd = before.shape
    rows, cols = parts.pop("rows"), parts.pop("cols")
    image_h, image_w = net.input_shape[:2]
    top, left, bottom, right = net.receptive_field(index).box(row, col, image_h, image_w)
    body = {
        "run": run_id,
        "layer": index,
        "name": layer.name,
        "position": [row, col, depth],
        "value": value,
        "recomputed": recomputed,
        "tolerance": tolerance,
        "agrees": bool(abs(value - recomputed) <= tolerance),
        "input": {
            "layer": index - 1,
            "name": net.layers[index - 1].name if index else "input",
            "shape": [bh, bw, bd],
            "rows": rows,
            "cols": cols,
        },
        "receptive_field": {"rows": [top, bottom + 1], "cols": [left, right + 1]},
        **{key: _plain(value) for key, value in parts.items()},
    }
    if layer.kind in ("conv", "conv2d", "fc"):
        own = int(layer.params["weight"][depth].size) + 1
        body["weight_count"] = {"neuron": own, "fully_connected": bh * bw * bd + 1}
    if layer.kind == "conv2d":
        body["stride"], body["dilation"] = list(layer.stride), list(layer.dilation)
    if layer.kind == "avgpool":
        body["count_include_pad"] = layer.count_include_pad
    model = PARTS[layer.kind].model_validate(body)
    return JSONResponse(model.model_dump(mode="json"), headers=cache_headers(expires))


def _plain(value: Any) -> Any:
    """NumPy arrays as lists, a max pool's -infinity padding as None (JSON has no infinity)."""
    if isinstance(value, np.ndarray) and value.dtype.kind == "f" and np.isneginf(value).any():
        return np.where(np.isneginf(value), None, value).tolist()
    return value.tolist() if isinstance(value, np.ndarray) else value
