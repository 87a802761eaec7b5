"""The follower's pages: GET /join asks for a code; GET /join/{code} is the viewer itself,
which static/js/session.js turns into a follower of that session (the code is in the
path, so the viewer's own query string stays as it is)."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.api import pages
from app.registry import RegistryDep
from app.sessions import codes

router = APIRouter(include_in_schema=False)


@router.get("/join", response_class=HTMLResponse)
def join_form(request: Request, code: str | None = None) -> Response:
    if code is not None and (normal := codes.normalize_code(code)):
        return RedirectResponse(request.url_for("join_session", code=normal), status_code=303)
    problem = None
    if code is not None:
        problem = (
            "A join code is six letters and digits, like ABC234; please check it and type it again."
        )
    return pages.templates.TemplateResponse(
        request,
        "join.html",
        {"problem": problem, "typed": code or "", "length": codes.CODE_LENGTH},
        status_code=200 if problem is None else 422,
    )


@router.get("/join/{code}", response_class=HTMLResponse, name="join_session")
def join_session(request: Request, registry: RegistryDep, code: str) -> Response:
    normal = codes.normalize_code(code)
    if normal is None:
        return join_form(request, code)
    if normal != code:
        return RedirectResponse(request.url_for("join_session", code=normal), status_code=303)
    return pages.index(request, registry)
