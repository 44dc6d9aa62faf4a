"""In a real browser: forgot the password, take the link from the server's console, choose a new one.

The link comes from the console transport's line in the server's output (no
EMAIL_URL in development), as a developer would copy it. The reset page
sends ``Referrer-Policy: no-referrer``: the browser must not send the page's
URL, token and all, with the page's own stylesheet and script requests.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, Request, expect

from tests.support.servers import AppServer

EMAIL = "forgetful@example.com"
OLD_PASSWORD = "correct horse battery staple 42"
NEW_PASSWORD = "violet lantern over quiet harbour 7"


@pytest.fixture(scope="module")
def app() -> Iterator[AppServer]:
    server = AppServer({"SIGN_IN_RATE_LIMIT": "100/minute", "PASSWORD_HASH_PROFILE": "cheapest"})
    server.start()
    created = httpx.post(
        server.url + "/api/auth/sign-up",
        json={"email": EMAIL, "password": OLD_PASSWORD},
        headers={"sec-fetch-site": "same-origin"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    yield server
    server.stop()


def reset_link(server: AppServer) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = re.findall(r"(http://\S+/reset-password\?token=[A-Za-z0-9_-]+)", server.output())
        if found:
            return str(found[-1])
        time.sleep(0.05)
    raise AssertionError(f"no reset link in the output:\n{server.output()}")


def test_forgot_password_then_reset_then_sign_in(page: Page, app: AppServer) -> None:
    page.goto(app.url + "/sign-in")
    page.click("#to-forgot-password")
    expect(page).to_have_url(app.url + "/forgot-password")
    page.fill("#email", EMAIL)
    page.click("#submit")
    expect(page.locator("#sent")).to_contain_text("on its way")

    link = reset_link(app)
    assert link.startswith(app.url + "/reset-password?token=")
    referers: list[str | None] = []

    def seen(request: Request) -> None:
        if "/static/" in request.url:
            referers.append(request.all_headers().get("referer"))

    page.on("request", seen)
    page.goto(link)
    expect(page.locator("h1")).to_contain_text("Choose a new password")
    page.fill("#password", NEW_PASSWORD)
    page.click("#submit")
    page.remove_listener("request", seen)
    assert referers  # the page loaded its stylesheet and script...
    # ...without naming the page (a resource the stylesheet loads names the stylesheet).
    assert not any("reset-password" in (referer or "") for referer in referers), referers

    expect(page).to_have_url(app.url + "/sign-in?reset=done")
    expect(page.locator("#reset-done")).to_be_visible()
    page.fill("#email", EMAIL)
    page.fill("#password", NEW_PASSWORD)
    page.click("#submit")
    expect(page).to_have_url(app.url + "/account")
    expect(page.locator("#account-email")).to_have_text(EMAIL)

    # The link was single use: opening it again says so, with a way to ask anew.
    page.goto(link)
    expect(page.locator("#error")).to_contain_text("already used")
    expect(page.locator("#ask-again")).to_be_visible()
