"""The health route, the API docs, and the headers every response carries."""

import httpx
import pytest

from app import __version__
from app.security import CONTENT_SECURITY_POLICY


async def test_healthz_says_ok_and_version(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": __version__}


async def test_openapi_describes_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["info"]["title"] == "ConvScope"
    assert "/healthz" in spec["paths"]
    assert "/docs" not in spec["paths"]


async def test_docs_page_loads_swagger_ui_from_this_server(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "swagger-ui-bundle.js" in html
    assert "http://" not in html and "https://" not in html
    # Everything the page references is served here.
    for path in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"):
        assert path in html
        assert (await client.get(path)).status_code == 200
    init = await client.get("/docs/init.js")
    assert init.headers["content-type"].startswith("text/javascript")
    assert '"/openapi.json"' in init.text


@pytest.mark.parametrize("path", ["/healthz", "/docs", "/openapi.json", "/no-such-page"])
async def test_every_response_carries_security_headers(
    client: httpx.AsyncClient, path: str
) -> None:
    headers = (await client.get(path)).headers
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"


async def test_redoc_is_not_served(client: httpx.AsyncClient) -> None:
    # FastAPI's ReDoc page loads its script from a CDN.
    assert (await client.get("/redoc")).status_code == 404
