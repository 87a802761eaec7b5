"""/docs in a real browser: Swagger UI renders the API under the strict CSP."""

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser


def test_docs_page_renders_the_api_without_csp_violations(page: Page, live_server: str) -> None:
    problems: list[str] = []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))

    page.goto(f"{live_server}/docs")

    expect(page.locator(".information-container .title")).to_contain_text("ConvScope")
    expect(page.locator(".opblock-summary-path", has_text="/healthz")).to_be_visible()
    assert problems == []
