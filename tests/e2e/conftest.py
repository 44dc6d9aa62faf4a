"""Real Chromium (Debian's package) driven by Playwright, and the app it browses."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


def chromium_path() -> str:
    path = os.environ.get("BASTION_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path):
        # Not a skip: a missing browser is a broken test machine, and CI installs it.
        raise RuntimeError(f"Chromium not found at {path}; run: apt-get install -y chromium")
    return path


class Chromium:
    """One Playwright and one Chromium for a row of browser tests in this process.

    Started by the first browser test and stopped after the last one of the
    row (:func:`pytest_runtest_teardown`), not at the end of the session:
    sync Playwright runs an event loop on this thread while it lives, which
    must not overlap the asyncio tests this process runs before or after.
    The browser tests form one row: they run last, and under xdist they are
    one group, on one worker (tests/conftest.py), so Chromium starts once.
    """

    def __init__(self) -> None:
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self.launches = 0

    def browser(self) -> Browser:
        if self._browser is None:
            self._playwright = sync_playwright().start()
            self._browser = self._playwright.chromium.launch(
                executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True
            )
            self.launches += 1
        return self._browser

    def close(self) -> None:
        browser, playwright = self._browser, self._playwright
        self._browser = self._playwright = None
        try:
            if browser is not None:
                browser.close()
        finally:
            if playwright is not None:
                playwright.stop()


CHROMIUM = Chromium()


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """After the last browser test of a row (and its fixtures' teardown), stop Chromium."""
    try:
        return (yield)
    finally:
        if nextitem is None or nextitem.get_closest_marker("browser") is None:
            CHROMIUM.close()


@pytest.fixture
def browser() -> Browser:
    return CHROMIUM.browser()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    instance = context.new_page()
    instance.set_default_timeout(10_000)
    yield instance
    context.close()
