"""The envelope around a FastAPI app: what the routes see and what clients get back."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

from tests.integration.frameworks import contract
from tests.integration.frameworks.contract import Harness


class Counter:
    def __init__(self) -> None:
        self.value = 0


def build() -> Harness:
    counter = Counter()
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/whoami")
    async def whoami(request: Request) -> dict[str, Any]:
        assert request.client is not None
        return {"client": request.client.host, "scheme": request.url.scheme}

    @app.post("/count")
    async def count() -> dict[str, int]:
        counter.value += 1
        return {"count": counter.value}

    @app.get("/framed")
    async def framed() -> PlainTextResponse:
        return PlainTextResponse("framed", headers={"X-Frame-Options": "SAMEORIGIN"})

    return Harness(contract.wrap(app), lambda: counter.value)


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
