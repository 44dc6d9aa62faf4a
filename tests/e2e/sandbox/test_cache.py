"""/sandbox/cache in a real browser: set, read back with its TTL, delete, see the miss."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.support.servers import AppServer


@pytest.fixture
def app_with_valkey(valkey_url: str) -> Iterator[AppServer]:
    server = AppServer({"VALKEY_URL": valkey_url}).start()
    yield server
    server.stop()


@pytest.fixture
def app_without_valkey() -> Iterator[AppServer]:
    server = AppServer({}).start()
    yield server
    server.stop()


def test_set_read_delete_in_the_browser(page: Page, app_with_valkey: AppServer) -> None:
    page.goto(app_with_valkey.url + "/sandbox/cache")
    expect(page.locator("#cache-state")).to_have_attribute("data-enabled", "true")

    page.fill("#key", "greeting")
    page.fill("#value", '{"hello": "world"}')
    page.fill("#ttl", "120")
    page.click("#set")
    expect(page.locator("#result")).to_have_attribute("data-action", "stored")

    page.click("#get")
    expect(page.locator("#result")).to_have_attribute("data-action", "read")
    expect(page.locator("#result-value")).to_have_text('{"hello": "world"}')
    ttl = int(page.locator("#result-ttl").get_attribute("data-ttl") or "0")
    assert 0 < ttl <= 120

    page.click("#delete")
    expect(page.locator("#result")).to_have_attribute("data-action", "deleted")
    page.click("#get")
    expect(page.locator("#result-miss")).to_be_visible()


def test_bad_input_shows_the_reason(page: Page, app_with_valkey: AppServer) -> None:
    page.goto(app_with_valkey.url + "/sandbox/cache")
    page.fill("#key", "k")
    page.fill("#value", "{not json")
    page.click("#set")
    expect(page.locator("#error")).to_contain_text("value must be JSON")
    page.fill("#value", "1")
    page.fill("#ttl", "-3")
    page.click("#set")
    expect(page.locator("#error")).to_contain_text("ttl must be a whole number")


def test_not_configured_without_valkey(page: Page, app_without_valkey: AppServer) -> None:
    page.goto(app_without_valkey.url + "/sandbox/cache")
    state = page.locator("#cache-state")
    expect(state).to_have_attribute("data-enabled", "false")
    expect(state).to_contain_text("The cache is not configured")
    page.fill("#key", "k")
    page.fill("#value", "1")
    page.click("#set")
    expect(page.locator("#result")).to_have_attribute("data-action", "not stored")
    page.goto(app_without_valkey.url + "/")
    expect(page.locator('[data-feature="VALKEY_URL"]').first).to_have_text("off")
