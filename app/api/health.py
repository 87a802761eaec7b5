"""GET /healthz: is the server up, and which version is it."""

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from app import __version__

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"]
    version: str


@router.get("/healthz")
def healthz() -> Health:
    """Answers 200 while the server can take requests (load balancers and Docker poll it)."""
    return Health(status="ok", version=__version__)
