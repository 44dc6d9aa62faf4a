"""/sandbox/sign-in and /sandbox/health in a real browser, on a real Valkey."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.support.servers import AppServer


@pytest.fixture
def app(valkey_url: str) -> Iterator[AppServer]:
    server = AppServer(
        {
            "VALKEY_URL": valkey_url,
            "SIGN_IN_RATE_LIMIT": "4/minute",
            "SIGN_IN_ACCOUNT_RATE_LIMIT": "100/minute",
        }
    ).start()
    yield server
    server.stop()


def test_the_limit_shows_trips_and_leaves_audit_rows(page: Page, app: AppServer) -> None:
    page.goto(app.url + "/sandbox/sign-in")
    expect(page.locator("#client")).to_have_text("127.0.0.1")
    expect(page.locator("#ip-remaining")).to_contain_text("4 of 4")
    page.reload()  # looking counts nothing
    expect(page.locator("#ip-remaining")).to_contain_text("4 of 4")

    expect(page.locator("#sandbox-remaining")).to_contain_text("4 of 4")
    page.click("#trip")
    expect(page.locator("#tripped")).to_contain_text("5 attempts made")
    expect(page.locator("#sandbox-remaining")).to_contain_text("0 of 4")
    expect(page.locator("#ip-remaining")).to_contain_text("4 of 4")  # your own IP is untouched
    rows = page.locator("#audit tbody tr")
    expect(rows).to_have_count(5)  # four failures, one tally of refusals
    expect(page.locator("#audit")).to_contain_text("auth.sign_in.blocked")
    expect(page.locator("#audit")).to_contain_text('"count": 1')
    expect(page.locator("#audit")).to_contain_text("192.0.2.1")


def test_the_health_page_shows_what_probes_see(page: Page, app: AppServer) -> None:
    page.goto(app.url + "/sandbox/health")
    expect(page.locator("#health-status")).to_have_text("200")
    expect(page.locator("#health")).to_contain_text('"database": true')
    expect(page.locator("#health")).to_contain_text('"cache": true')
    expect(page.locator("#live-status")).to_have_text("200")
    expect(page.locator("#live")).to_contain_text('"status": "ok"')
