"""The example app answers the browser's /favicon.ico itself, from its own origin.

Every browser asks for /favicon.ico; without an answer each page view logged
a 404 for ``<unmatched>``. The page also links the icon, on the same origin,
so no browser looks for it on another host.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from tests.support.servers import AppServer


@pytest.fixture(scope="module")
def app() -> Iterator[AppServer]:
    server = AppServer({}).start()
    yield server
    server.stop()


def test_favicon_ico_answers_200_with_an_icon(app: AppServer) -> None:
    response = httpx.get(app.url + "/favicon.ico", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/x-icon"
    reserved, kind, count = struct.unpack("<HHH", response.content[:6])
    assert (reserved, kind, count) == (0, 1, 1)  # an ICO file holding one image
    width, height = response.content[6], response.content[7]
    assert (width, height) == (16, 16)


def test_pages_link_the_icon_on_their_own_origin(app: AppServer) -> None:
    for path in ("/", "/sign-in", "/sandbox/cache"):
        html = httpx.get(app.url + path, timeout=5).text
        link = re.search(r'<link rel="icon" href="([^"]+)"', html)
        assert link is not None, path
        href = urljoin(app.url + path, link.group(1))
        assert urlsplit(href).netloc == urlsplit(app.url).netloc, href
        icon = httpx.get(href, timeout=5)
        assert icon.status_code == 200
        assert icon.content == httpx.get(app.url + "/favicon.ico", timeout=5).content


def test_no_404_is_logged_for_the_icon(app: AppServer) -> None:
    httpx.get(app.url + "/favicon.ico", timeout=5)
    # "bastion.access: GET <route> <status> <ms>ms ...": a status, not any "404"
    # (a duration or a request id can hold one).
    assert not re.search(r"access: GET \S+ 404 ", app.output()), app.output()
    assert re.search(r"access: GET /favicon.ico 200 ", app.output()), app.output()
