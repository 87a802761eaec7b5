"""Every error is JSON `{"detail": "<a sentence>"}`, including the ones FastAPI makes.

Validation errors become one sentence naming the parameter; anything unexpected becomes a
500 with a sentence and no traceback (the traceback goes to the server's log).
"""

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

UNEXPECTED = "Something went wrong on the server; it has been logged. Please try again."

# Starlette's own errors carry only the status phrase ("Not Found"); say it as a sentence.
ROUTING_SENTENCES = {
    404: "There is nothing at this address; the API is described at /docs.",
    405: "This address does not accept that method; the API is described at /docs.",
}


class ErrorDetail(BaseModel):
    """Every error response's body."""

    detail: str = Field(description="What went wrong, as a sentence for a person.")


def error(description: str) -> dict[str, Any]:
    """An entry for a route's `responses`: this status, with an ErrorDetail body."""
    return {"description": description, "model": ErrorDetail}


def validation_sentence(error: RequestValidationError) -> str:
    problems = []
    for item in error.errors():
        where = [str(part) for part in item.get("loc", ()) if part != "body"]
        place = f"{where[0]} parameter {where[-1]!r}" if len(where) > 1 else "the request"
        problems.append(f"{place}: {item.get('msg', 'is invalid')}")
    text = "; ".join(problems) or "the request is invalid"
    return text[0].upper() + text[1:] + "."


async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    return JSONResponse({"detail": validation_sentence(error)}, status_code=422)


async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    detail = error.detail
    if detail == HTTPStatus(error.status_code).phrase:
        detail = ROUTING_SENTENCES.get(error.status_code, f"{detail}.")
    return JSONResponse({"detail": detail}, status_code=error.status_code, headers=error.headers)


async def _unexpected_error(request: Request, error: Exception) -> JSONResponse:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=error)
    return JSONResponse({"detail": UNEXPECTED}, status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        # FastAPI documents its validation errors as a list; ours are one sentence.
        if app.openapi_schema is None:
            schema = generate()
            schemas = schema.get("components", {}).get("schemas", {})
            if "HTTPValidationError" in schemas:
                schemas["HTTPValidationError"] = {
                    **ErrorDetail.model_json_schema(),
                    "title": "HTTPValidationError",
                }
                schemas.pop("ValidationError", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
