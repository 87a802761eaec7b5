"""GET /healthz: is the server up, can it keep runs, and which version is it."""

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app import __version__, store_check
from app.errors import error
from app.runs import RunStoreDep

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"]
    version: str


@router.get("/healthz", responses={503: error("The server cannot keep runs; detail says why.")})
def healthz(store: RunStoreDep) -> Health:
    """Answers 200 while the server can take requests (load balancers and Docker poll it),
    503 with a sentence when it cannot keep runs (its run store is missing, read-only,
    another user's, or on a full disk)."""
    if reason := store_check.check(store):
        return JSONResponse(  # type: ignore[return-value]
            {"detail": f"The server cannot keep runs: {reason}."},
            status_code=503,
            headers={"Retry-After": "30"},
        )
    return Health(status="ok", version=__version__)
