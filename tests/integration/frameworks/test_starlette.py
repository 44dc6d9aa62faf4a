"""The envelope around a bare Starlette app: what the routes see and what clients get back."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from tests.integration.frameworks import contract
from tests.integration.frameworks.contract import Harness


def build() -> Harness:
    posts = 0

    async def whoami(request: Request) -> JSONResponse:
        assert request.client is not None
        return JSONResponse({"client": request.client.host, "scheme": request.url.scheme})

    async def count(request: Request) -> JSONResponse:
        nonlocal posts
        posts += 1
        return JSONResponse({"count": posts})

    async def framed(request: Request) -> PlainTextResponse:
        return PlainTextResponse("framed", headers={"X-Frame-Options": "SAMEORIGIN"})

    app = Starlette(
        routes=[
            Route("/whoami", whoami, methods=["GET"]),
            Route("/count", count, methods=["POST"]),
            Route("/framed", framed, methods=["GET"]),
        ]
    )
    return Harness(contract.wrap(app), lambda: posts)


@pytest.fixture
def harness() -> Harness:
    return build()


async def test_get_carries_security_headers(harness: Harness) -> None:
    await contract.check_get_carries_security_headers(harness)


async def test_spoofed_forwarded_for_from_untrusted_peer_is_ignored(harness: Harness) -> None:
    await contract.check_spoofed_forwarded_for_is_ignored(harness)


async def test_trusted_proxy_sets_client_and_scheme(harness: Harness) -> None:
    await contract.check_trusted_proxy_sets_client_and_scheme(harness)


async def test_same_origin_post_reaches_route(harness: Harness) -> None:
    await contract.check_same_origin_post_reaches_route(harness)


async def test_cross_origin_post_is_refused(harness: Harness) -> None:
    await contract.check_cross_origin_post_is_refused(harness)


async def test_unknown_host_is_refused(harness: Harness) -> None:
    await contract.check_unknown_host_is_refused(harness)


async def test_route_header_is_neither_overwritten_nor_duplicated(harness: Harness) -> None:
    await contract.check_route_header_is_kept(harness)
