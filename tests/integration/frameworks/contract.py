"""What every framework must see behind the envelope, shared by the per-framework modules.

Each module builds the same three routes in its own framework:

- ``GET /whoami``: ``{"client": request.client.host, "scheme": request.url.scheme}``
- ``POST /count``: increments a counter and returns it
- ``GET /framed``: sets its own ``X-Frame-Options: SAMEORIGIN``

and hands the wrapped app plus a way to read the counter to the checks below,
which drive it in-process through httpx.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import httpx
from starlette.types import ASGIApp

from bastion.config import load_settings
from bastion.hardening import envelope

__all__ = [
    "PROXY",
    "STRANGER",
    "Harness",
    "check_cross_origin_post_is_refused",
    "check_get_carries_security_headers",
    "check_route_header_is_kept",
    "check_same_origin_post_reaches_route",
    "check_spoofed_forwarded_for_is_ignored",
    "check_trusted_proxy_sets_client_and_scheme",
    "check_unknown_host_is_refused",
    "wrap",
]

BASE_URL = "http://testserver"
PROXY = ("10.0.0.1", 1234)
STRANGER = ("192.0.2.9", 1)


@dataclass(frozen=True)
class Harness:
    """A framework app behind the envelope, and the counter its POST route increments."""

    app: ASGIApp
    count: Callable[[], int]

    def client(self, peer: tuple[str, int] = PROXY) -> httpx.AsyncClient:
        # httpx types its ASGI app with plain dicts; the envelope speaks Starlette's types.
        transport = httpx.ASGITransport(app=cast(Any, self.app), client=peer)
        return httpx.AsyncClient(transport=transport, base_url=BASE_URL)


def wrap(app: ASGIApp) -> ASGIApp:
    """``app`` behind the envelope, as the brief's deployment configures it."""
    settings = load_settings(
        APP_URL=BASE_URL, ALLOWED_HOSTS="testserver", TRUSTED_PROXIES="10.0.0.1"
    )
    return envelope(app, settings)


async def check_get_carries_security_headers(harness: Harness) -> None:
    async with harness.client() as client:
        response = await client.get("/whoami")
    assert response.status_code == 200
    assert response.json() == {"client": "10.0.0.1", "scheme": "http"}
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "strict-transport-security" not in response.headers


async def check_spoofed_forwarded_for_is_ignored(harness: Harness) -> None:
    spoof = {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https"}
    async with harness.client(STRANGER) as client:
        response = await client.get("/whoami", headers=spoof)
    assert response.status_code == 200
    assert response.json() == {"client": "192.0.2.9", "scheme": "http"}
    assert "strict-transport-security" not in response.headers


async def check_trusted_proxy_sets_client_and_scheme(harness: Harness) -> None:
    async with harness.client(PROXY) as client:
        forwarded = await client.get("/whoami", headers={"X-Forwarded-For": "6.6.6.6"})
        assert forwarded.json() == {"client": "6.6.6.6", "scheme": "http"}
        assert "strict-transport-security" not in forwarded.headers

        https = await client.get(
            "/whoami", headers={"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https"}
        )
    assert https.status_code == 200
    assert https.json() == {"client": "6.6.6.6", "scheme": "https"}
    assert https.headers["strict-transport-security"].startswith("max-age=")


async def check_same_origin_post_reaches_route(harness: Harness) -> None:
    before = harness.count()
    async with harness.client() as client:
        response = await client.post("/count", headers={"Sec-Fetch-Site": "same-origin"})
        assert response.is_success, response.text
        assert harness.count() == before + 1
        # The site's own Origin, without Sec-Fetch-Site, passes too.
        response = await client.post("/count", headers={"Origin": BASE_URL})
    assert response.is_success, response.text
    assert harness.count() == before + 2
    assert response.headers["x-content-type-options"] == "nosniff"


async def check_cross_origin_post_is_refused(harness: Harness) -> None:
    before = harness.count()
    async with harness.client() as client:
        response = await client.post("/count", headers={"Origin": "http://evil.example"})
        assert response.status_code == 403
        assert "CSRF" in response.text
        assert response.headers["x-frame-options"] == "DENY"
        bare = await client.post("/count")  # no Sec-Fetch-Site, Origin or Referer at all
        assert bare.status_code == 403
        cross = await client.post(
            "/count", headers={"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"}
        )
        assert cross.status_code == 403
    assert harness.count() == before


async def check_unknown_host_is_refused(harness: Harness) -> None:
    before = harness.count()
    async with harness.client() as client:
        response = await client.get("/whoami", headers={"Host": "evil.example"})
        assert response.status_code == 400
        assert "ALLOWED_HOSTS" in response.text
        post = await client.post(
            "/count", headers={"Host": "evil.example", "Sec-Fetch-Site": "same-origin"}
        )
        assert post.status_code == 400
    assert harness.count() == before


async def check_route_header_is_kept(harness: Harness) -> None:
    async with harness.client() as client:
        response = await client.get("/framed")
    assert response.status_code == 200
    assert response.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    assert response.headers.get_list("x-content-type-options") == ["nosniff"]
