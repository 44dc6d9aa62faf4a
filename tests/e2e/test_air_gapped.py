"""Air-gapped posture in a real browser: every request stays on the app's origin.

An on-prem site often has no route to the internet, so a page that pulls a
font, a stylesheet or a script from a CDN renders wrong (or waits for a
timeout) there. Chromium visits every page, signed out, as a new member and
as an administrator, while every request it makes is recorded; all of them
must go to the app's own origin, and the self-hosted Inter must actually load.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Request, Response, expect

from tests.support.servers import AppServer

ADMIN_EMAIL = "root@example.com"
ADMIN_PASSWORD = "an administrator passphrase"
FONT_FAMILY = "Inter"
FONT_FILE = "/static/fonts/inter-latin-wght-normal.woff2"


@pytest.fixture(scope="module")
def app() -> Iterator[AppServer]:
    server = AppServer({"SIGN_IN_RATE_LIMIT": "100/minute"}).start()
    server.create_admin(ADMIN_EMAIL, ADMIN_PASSWORD)
    yield server
    server.stop()


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def assert_font_loaded(page: Page) -> None:
    """The face is in use, not merely declared: ``check`` is also true when nothing matches."""
    page.evaluate("document.fonts.ready.then(() => true)")
    assert page.evaluate(f"document.fonts.check('16px \"{FONT_FAMILY}\"')") is True
    loaded = page.evaluate(
        f"[...document.fonts].some(f => f.family.replace(/\"/g, '') === '{FONT_FAMILY}'"
        " && f.status === 'loaded')"
    )
    assert loaded is True, page.url
    family = page.evaluate("getComputedStyle(document.body).fontFamily")
    assert family.startswith(f'"{FONT_FAMILY}"') or family.startswith(FONT_FAMILY)


def test_every_page_loads_only_from_its_own_origin_and_uses_the_self_hosted_font(
    page: Page, app: AppServer
) -> None:
    requests: list[Request] = []
    font_responses: list[Response] = []
    csp_reports: list[str] = []
    # A lambda, not requests.append: Playwright tags its handlers with an attribute.
    page.on("request", lambda r: requests.append(r))  # noqa: PLW0108
    page.on("response", lambda r: font_responses.append(r) if r.url.endswith(".woff2") else None)
    page.on(
        "console",
        lambda m: csp_reports.append(m.text) if "Content Security Policy" in m.text else None,
    )

    visited: list[str] = []

    def visit(path: str, heading: str) -> None:
        page.goto(app.url + path)
        expect(page.locator("h1")).to_have_text(heading)
        assert_font_loaded(page)
        visited.append(urlsplit(page.url).path)

    # Signed out.
    visit("/", "The envelope")
    visit("/sign-in", "Sign in")
    visit("/sign-up", "Sign up")
    visit("/sandbox/cache", "Cache sandbox")
    visit("/sandbox/hardening", "Hardening sandbox")

    # A new member: sign up (lands on /account), then sign out.
    page.goto(app.url + "/sign-up")
    page.fill("#email", "member@example.com")
    page.fill("#password", "a newcomer passphrase")
    page.click("#submit")
    expect(page).to_have_url(app.url + "/account")
    expect(page.locator("#account-role")).to_have_text("member")
    assert_font_loaded(page)
    visited.append("/account")
    page.click("#sign-out")
    expect(page).to_have_url(app.url + "/")

    # The administrator (created with `bastion createuser --admin`): the audit log.
    page.goto(app.url + "/sign-in")
    page.fill("#email", ADMIN_EMAIL)
    page.fill("#password", ADMIN_PASSWORD)
    page.click("#submit")
    expect(page).to_have_url(app.url + "/account")
    expect(page.locator("#account-role")).to_have_text("administrator")
    page.click("text=Audit log")
    expect(page).to_have_url(app.url + "/admin/audit")
    expect(page.locator("h1")).to_have_text("Audit log")
    expect(page.locator("body")).to_contain_text("auth.sign_up")
    assert_font_loaded(page)
    visited.append("/admin/audit")

    assert visited == [
        "/",
        "/sign-in",
        "/sign-up",
        "/sandbox/cache",
        "/sandbox/hardening",
        "/account",
        "/admin/audit",
    ]
    # Every request the browser made, documents, styles, scripts, fonts, form
    # posts and redirects included, went to the app's own origin.
    assert len(requests) > len(visited)
    foreign = sorted({r.url for r in requests if origin(r.url) != app.url})
    assert foreign == []
    kinds = {r.resource_type for r in requests}
    assert {"document", "stylesheet", "script", "font"} <= kinds
    # The font file itself was fetched from here and answered 200.
    assert any(r.url == app.url + FONT_FILE and r.status == 200 for r in font_responses)
    assert csp_reports == []
