"""In a real browser: /account lists where you are signed in, and ends the sessions you pick.

Two browser contexts are two devices (separate cookie jars). The one that
ends the other's session, or all others, keeps its own; the other is sent
to the sign-in page at its next navigation.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.support.servers import AppServer

EMAIL = "ada.sessions@example.com"
PASSWORD = "correct horse battery staple 42"


@pytest.fixture(scope="module")
def app() -> Iterator[AppServer]:
    server = AppServer(
        {"SIGN_IN_RATE_LIMIT": "100/minute", "SIGN_UP_RATE_LIMIT": "100/minute"}
    ).start()
    yield server
    server.stop()


@pytest.fixture
def contexts(browser: Browser) -> Iterator[list[BrowserContext]]:
    made = [browser.new_context(), browser.new_context()]
    yield made
    for context in made:
        context.close()


def submit(page: Page, app: AppServer, path: str) -> None:
    page.goto(app.url + path)
    page.fill("#email", EMAIL)
    page.fill("#password", PASSWORD)
    page.click("#submit")
    expect(page).to_have_url(app.url + "/account")


def test_the_account_page_lists_sessions_and_ends_them(
    contexts: list[BrowserContext], app: AppServer
) -> None:
    mine, other = (context.new_page() for context in contexts)
    for page in (mine, other):
        page.set_default_timeout(10_000)
    submit(mine, app, "/sign-up")
    submit(other, app, "/sign-in")

    mine.reload()
    rows = mine.locator("#sessions tr.session")
    expect(rows).to_have_count(2)
    expect(mine.locator("#sessions .this-device")).to_have_count(1)
    this = mine.locator("#sessions tr.session[data-current='true']")
    expect(this).to_contain_text("(this device)")
    expect(this).to_contain_text("Chrome on Linux")  # headless Chromium, read from its UA
    expect(this).to_contain_text("127.0.0.1")

    mine.click("#end-others")
    expect(mine).to_have_url(app.url + "/account")
    expect(rows).to_have_count(1)
    expect(mine.locator("#end-others")).to_have_count(0)
    other.goto(app.url + "/account")
    expect(other).to_have_url(app.url + "/sign-in?next=%2Faccount")

    # One session, by its own button: the other device again, ended from this one.
    submit(other, app, "/sign-in")
    mine.reload()
    expect(rows).to_have_count(2)
    mine.click("#sessions tr.session[data-current='false'] button.end-session")
    expect(mine).to_have_url(app.url + "/account")
    expect(rows).to_have_count(1)
    other.goto(app.url + "/account")
    expect(other).to_have_url(app.url + "/sign-in?next=%2Faccount")

    # Ending this device's own session is signing out.
    mine.click("#sessions tr.session[data-current='true'] button.end-session")
    expect(mine).to_have_url(app.url + "/")
    expect(mine.locator("#nav-sign-in")).to_be_visible()
