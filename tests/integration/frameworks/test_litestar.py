"""The envelope around a Litestar app: what the handlers see and what clients get back."""

from __future__ import annotations

from typing import Any, cast

import pytest
from litestar import Litestar, Request, Response, get, post
from starlette.types import ASGIApp

from tests.integration.frameworks import contract
from tests.integration.frameworks.contract import Harness


def build() -> Harness:
    posts = [0]

    @get("/whoami")
    async def whoami(request: Request[Any, Any, Any]) -> dict[str, str]:
        assert request.client is not None
        return {"client": request.client.host, "scheme": request.url.scheme}

    @post("/count")
    async def count() -> dict[str, int]:
        posts[0] += 1
        return {"count": posts[0]}

    @get("/framed")
    async def framed() -> Response[str]:
        return Response("framed", headers={"X-Frame-Options": "SAMEORIGIN"})

    app = Litestar(route_handlers=[whoami, count, framed])
    # Litestar types its scope as TypedDicts; on the wire it is the same ASGI app.
    return Harness(contract.wrap(cast(ASGIApp, app)), lambda: posts[0])


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
