"""The README's recipe for FastAPI's /docs and /redoc, in Chromium behind the envelope.

``examples/fastapi_docs_app`` under uvicorn: Swagger UI and ReDoc must really
render the app's operations, with no Content-Security-Policy violation (both
the console's reports and the page's ``securitypolicyviolation`` events) and
no request to any origin but the app's own. Everything outside the two pages
keeps bastion's default CSP.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Page, Request, expect

from bastion.hardening import DEFAULT_SECURITY_HEADERS
from tests.support.servers import AppServer

#: Every securitypolicyviolation event of the page, kept where the test can read it.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(e.violatedDirective + " " + e.blockedURI);
});
"""


@pytest.fixture(scope="module")
def app() -> Iterator[AppServer]:
    server = AppServer(
        {}, factory="examples.fastapi_docs_app.app:create_app", ready_path="/api/health/live"
    ).start(migrate=False)
    yield server
    server.stop()


class Watched:
    """A page's requests and CSP reports, from the first request on."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.requests: list[Request] = []
        self.console: list[str] = []
        page.add_init_script(RECORD_VIOLATIONS)
        page.on("request", lambda r: self.requests.append(r))  # noqa: PLW0108
        page.on(
            "console",
            lambda m: self.console.append(m.text) if "Content Security Policy" in m.text else None,
        )

    def assert_clean(self, origin: str) -> None:
        violations = self.page.evaluate("window.__violations")
        assert (violations, self.console) == ([], [])
        # A ReDoc search worker is a blob: URL of this same origin.
        foreign = {r.url for r in self.requests if _origin(r.url.removeprefix("blob:")) != origin}
        assert foreign == set()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def test_swagger_ui_renders_from_the_apps_own_origin(page: Page, app: AppServer) -> None:
    watched = Watched(page)
    page.goto(app.url + "/docs")
    operations = page.locator(".swagger-ui .opblock-summary-path")
    expect(operations).to_have_count(2)
    expect(operations.first).to_contain_text("/items/{item_id}")
    page.locator(".opblock-get .opblock-summary").click()  # expand: React renders more
    expect(page.locator(".opblock-get .parameters")).to_contain_text("item_id")
    watched.assert_clean(app.url)
    assert any(r.url.endswith("/swagger-ui-bundle.js") for r in watched.requests)


def test_redoc_renders_and_searches_from_the_apps_own_origin(page: Page, app: AppServer) -> None:
    watched = Watched(page)
    page.goto(app.url + "/redoc")
    expect(page.locator("h1")).to_contain_text("Shop")
    expect(page.locator("h2", has_text="Create Item")).to_have_count(1)
    page.fill("input[placeholder='Search...']", "create")  # ReDoc's search runs in a worker
    expect(page.locator("[data-role='search:results']")).to_contain_text("Create Item")
    watched.assert_clean(app.url)
    assert any(r.url.startswith("blob:") for r in watched.requests), "the search worker ran"


def test_only_the_docs_pages_get_the_docs_policy(app: AppServer) -> None:
    docs = httpx.get(app.url + "/docs", timeout=5).headers["content-security-policy"]
    redoc = httpx.get(app.url + "/redoc", timeout=5).headers["content-security-policy"]
    schema = httpx.get(app.url + "/openapi.json", timeout=5).headers["content-security-policy"]
    script_src = next(d for d in docs.split("; ") if d.startswith("script-src"))
    assert "'sha256-" in script_src
    assert "'unsafe-inline'" not in script_src
    assert "'unsafe-inline'" not in next(d for d in redoc.split("; ") if d.startswith("script-src"))
    assert schema == DEFAULT_SECURITY_HEADERS["content-security-policy"]
