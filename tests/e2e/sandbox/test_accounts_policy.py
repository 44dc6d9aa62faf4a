"""/sandbox/accounts' password check in a real browser: the verdict without a reload, under CSP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.support.servers import AppServer


@pytest.fixture
def app() -> Iterator[AppServer]:
    server = AppServer({}).start()
    yield server
    server.stop()


def test_the_policy_verdict_shows_as_you_check(page: Page, app: AppServer) -> None:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(app.url + "/sandbox/accounts")
    expect(page.locator("#min-length")).to_have_text("15")
    expect(page.locator("#verdict")).to_be_hidden()

    page.fill("#verdict-email", "ada.lovelace@example.com")
    page.fill("#verdict-password", "1234567890QWERTY")
    page.click("#verdict-check")
    verdict = page.locator("#verdict")
    expect(verdict).to_have_attribute("data-reason", "common")
    expect(verdict).to_contain_text("one of the most common ones")
    expect(page.locator("#verdict-password")).to_have_value("1234567890QWERTY")  # no reload

    page.fill("#verdict-password", "lovelace wrote the first program")
    page.click("#verdict-check")
    expect(verdict).to_have_attribute("data-reason", "contains_context")

    page.fill("#verdict-password", "a correct horse grazes by the battery staple")
    page.click("#verdict-check")
    expect(verdict).to_have_attribute("data-ok", "true")
    expect(verdict).to_have_text("Accepted: this password may be set.")
    assert errors == []
