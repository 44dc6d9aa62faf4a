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


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Module-scoped: sync Playwright runs an event loop on this thread while it lives,
    which must not overlap the asyncio tests elsewhere in the suite."""
    with sync_playwright() as instance:
        yield instance


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    instance = playwright.chromium.launch(
        executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True
    )
    yield instance
    instance.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    instance = context.new_page()
    instance.set_default_timeout(10_000)
    yield instance
    context.close()
