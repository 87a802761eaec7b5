"""The run record: what one image pushed through one model produced, in one shape that the
stream, the run store, the routes and `convscope forward` all share.

    record = RunRecord(id=..., model="cifar10", trained=True, created=time.time(),
                       classes=[...], input=RunInput(shape=[32, 32, 3]))
    record.layers.append(RunLayer(index=0, name="conv1", kind="conv", shape=[...], stats=...))
    record.probabilities, record.top = ...
    record.dump()      # the JSON-ready dict the store keeps and GET /api/runs/{id} answers

The volumes themselves are not part of the record: the store keeps them beside it and the
stream sends them quantised (app/stream.py).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class Stats(BaseModel):
    min: float
    max: float
    mean: float
    std: float
    zeros: float = Field(description="Fraction of the volume's numbers that are exactly 0.")


class RunLayer(BaseModel):
    index: int
    name: str
    kind: str
    shape: list[int]
    stats: Stats


class TopClass(BaseModel):
    model_config = {"populate_by_name": True}

    index: int
    class_: str = Field(alias="class")
    probability: float


class RunInput(BaseModel):
    shape: list[int] = Field(description="[H, W, D] of the preprocessed input pixels.")
    layout: Literal["HWD"] = "HWD"


class RunRecord(BaseModel):
    id: str
    model: str
    trained: bool
    created: float = Field(description="Unix time the run was made.")
    classes: list[str]
    input: RunInput
    layers: list[RunLayer] = Field(default_factory=list)
    probabilities: list[float] = Field(default_factory=list)
    top: list[TopClass] = Field(default_factory=list)

    def dump(self) -> dict[str, Any]:
        """The record as plain JSON-ready data, top classes under "class"."""
        return self.model_dump(by_alias=True)

    def dump_json(self) -> bytes:
        """`dump()` as JSON, by pydantic's serializer (an eighth of json.dumps's CPU)."""
        return self.model_dump_json(by_alias=True).encode()
