"""The layout from 320 px up, in a real browser: no sideways scroll, every nav item visible.

At 375 px the nav did not wrap: the page was 454 px wide and "Account" sat
past the dark header, white on the light page. Every page is measured at
three widths (a small phone, a common phone, a tablet): the document must be
no wider than the window, and each nav link must lie inside the viewport and
inside the header, on its dark background.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page

from tests.support.servers import AppServer

WIDTHS = (320, 375, 768)
PAGES = ("/", "/sign-in", "/sign-up")


@pytest.fixture(scope="module")
def app() -> Iterator[AppServer]:
    server = AppServer({}).start()
    yield server
    server.stop()


def _luminance(css: str) -> float:
    """Relative luminance (WCAG) of an ``rgb(...)``/``rgba(...)`` colour."""
    parts = [float(p) for p in css[css.index("(") + 1 : css.index(")")].split(",")[:3]]

    def channel(value: float) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(p) for p in parts)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _pages(page: Page, app: AppServer) -> list[str]:
    """The fixed pages, and every sandbox page the nav links (so a new one is measured too)."""
    page.goto(app.url + "/")
    sandboxes = page.eval_on_selector_all(
        "header nav a[href^='/sandbox/']", "links => links.map(a => a.getAttribute('href'))"
    )
    assert sandboxes, "the nav links no sandbox page"
    return [*PAGES, *sandboxes]


@pytest.mark.parametrize("width", WIDTHS)
def test_no_sideways_scroll_and_every_nav_item_readable(
    page: Page, app: AppServer, width: int
) -> None:
    page.set_viewport_size({"width": width, "height": 800})
    for path in _pages(page, app):
        page.goto(app.url + path)
        scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert scroll <= inner, f"{path} at {width} px is {scroll} px wide"
        header = page.locator("header.top")
        header_box = header.bounding_box()
        assert header_box is not None
        header_bg = header.evaluate("e => getComputedStyle(e).backgroundColor")
        links = page.locator("header.top nav a")
        assert links.count() >= 5
        for index in range(links.count()):
            link = links.nth(index)
            name = link.inner_text()
            assert link.is_visible(), f"{name!r} hidden on {path} at {width} px"
            box = link.bounding_box()
            assert box is not None
            assert box["x"] >= 0, (name, path, width, box)
            assert box["x"] + box["width"] <= inner, (name, path, width, box)
            assert header_box["y"] <= box["y"]
            assert box["y"] + box["height"] <= header_box["y"] + header_box["height"], (
                f"{name!r} falls out of the header on {path} at {width} px"
            )
            color = link.evaluate("e => getComputedStyle(e).color")
            assert _contrast(color, header_bg) >= 4.5, (name, color, header_bg)
