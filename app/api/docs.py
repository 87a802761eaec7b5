"""GET /docs: Swagger UI for the OpenAPI description, served from this machine.

FastAPI's own page loads Swagger UI from a CDN and starts it with an inline script; both
break in an offline classroom and under our CSP. Here the files come from the
fastapi-offline package and the start-up code is a script of its own.
"""

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

SWAGGER_UI_DIR = Path(str(files("fastapi_offline") / "static"))
ASSETS_URL = "/docs/assets"

router = APIRouter(include_in_schema=False)

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} API</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="icon" href="{assets}/favicon.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
"""

INIT_SCRIPT = """window.ui = SwaggerUIBundle({
  url: "%s",
  dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  layout: "BaseLayout",
  deepLinking: true,
});
"""


@router.get("/docs")
def docs_page(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE.format(title=request.app.title, assets=ASSETS_URL))


@router.get("/docs/init.js")
def docs_init(request: Request) -> Response:
    return Response(INIT_SCRIPT % request.app.openapi_url, media_type="text/javascript")
