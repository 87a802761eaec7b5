"""GET /: the viewer page. The HTML works before any script runs (a model picker, the
model's layers and an upload form); static/js/app.js enhances it into the live viewer."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from app import __version__
from app.paths import TEMPLATES_DIR
from app.registry import RegistryDep

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=TEMPLATES_DIR)


@router.get("/", response_class=HTMLResponse)
def index(request: Request, registry: RegistryDep, model: str | None = None) -> HTMLResponse:
    models = list(registry.models)
    chosen = model if model in registry.models else (models[0] if models else "")
    summary = registry.models[chosen].summary() if chosen else None
    return templates.TemplateResponse(
        request,
        "index.html",
        {
            "models": models,
            "taglines": {id: served.tagline for id, served in registry.models.items()},
            "model": chosen,
            "summary": summary,
            "version": __version__,
        },
    )
