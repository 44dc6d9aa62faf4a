"""What every framework sees behind bastion, and gets back: one contract, three frameworks.

Starlette, FastAPI and Litestar each build the same small app
(:mod:`tests.integration.frameworks.apps`); every test here runs on all three,
in-process through httpx. The operations endpoints are checked both ways an
adopter can have them: answered by ``Bastion.protect`` itself, and mounted at
``/api`` by the framework (``Bastion.operations_app``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import litestar
import pytest
from litestar.params import FromPath
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import ASGIApp

from bastion import Bastion
from bastion.config import load_settings
from bastion.hardening import envelope
from tests.integration.frameworks.apps import BUILDERS

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


def _settings(**extra: str) -> Any:
    return load_settings(
        APP_URL=BASE_URL, ALLOWED_HOSTS="testserver", TRUSTED_PROXIES="10.0.0.1", **extra
    )


@pytest.fixture(params=sorted(BUILDERS))
def framework(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def harness(framework: str) -> Harness:
    app, count = BUILDERS[framework](None)
    return Harness(envelope(app, _settings()), count)


async def test_get_carries_security_headers(harness: Harness) -> None:
    async with harness.client() as client:
        response = await client.get("/whoami")
    assert response.status_code == 200
    assert response.json() == {"client": "10.0.0.1", "scheme": "http"}
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "strict-transport-security" not in response.headers


async def test_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(harness: Harness) -> None:
    spoof = {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https"}
    async with harness.client(STRANGER) as client:
        response = await client.get("/whoami", headers=spoof)
    assert response.status_code == 200
    assert response.json() == {"client": "192.0.2.9", "scheme": "http"}
    assert "strict-transport-security" not in response.headers


async def test_a_trusted_proxy_sets_client_and_scheme(harness: Harness) -> None:
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


async def test_a_same_origin_post_reaches_the_route(harness: Harness) -> None:
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


async def test_a_cross_origin_post_is_refused(harness: Harness) -> None:
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


async def test_an_unknown_host_is_refused(harness: Harness) -> None:
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


async def test_a_route_header_is_neither_overwritten_nor_duplicated(harness: Harness) -> None:
    async with harness.client() as client:
        response = await client.get("/framed")
    assert response.status_code == 200
    assert response.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    assert response.headers.get_list("x-content-type-options") == ["nosniff"]


# -- the operations endpoints, without bastion's accounts --------------------------------------


@pytest.fixture
async def bastion(tmp_path: Path) -> AsyncIterator[Bastion]:
    instance = Bastion(
        _settings(DATABASE_URL=f"sqlite:///{tmp_path}/ops.db", METRICS_ENABLED="true")
    )
    yield instance
    await instance.shutdown()


async def _check_operations(app: ASGIApp) -> None:
    transport = httpx.ASGITransport(app=cast(Any, app), client=PROXY)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        live = await client.get("/api/health/live")
        health = await client.get("/api/health")
        metrics = await client.get("/api/metrics")
        # The framework's own routes are still the framework's.
        assert (await client.get("/whoami")).status_code == 200
    assert live.json() == {"status": "ok"}
    assert health.status_code == 200
    assert health.json()["database"] is True
    assert health.headers["cache-control"] == "no-store"
    assert health.headers["x-content-type-options"] == "nosniff"  # inside the envelope
    assert metrics.headers["content-type"].startswith("text/plain; version=")
    assert 'bastion_health_checks_total{outcome="ok"} 1.0' in metrics.text


async def test_protect_answers_the_operations_endpoints(framework: str, bastion: Bastion) -> None:
    app, _ = BUILDERS[framework](None)
    await _check_operations(bastion.protect(app))


async def test_the_operations_app_mounts_at_api(framework: str, bastion: Bastion) -> None:
    app, _ = BUILDERS[framework](bastion.operations_app())
    await _check_operations(bastion.protect(app, operations=False))


async def test_litestar_requests_are_counted_under_their_route_template(bastion: Bastion) -> None:
    """Litestar names no ``scope["route"]``: its template is read instead, never the path."""

    @litestar.get("/items/{i:int}")
    async def item(i: FromPath[int]) -> dict[str, int]:
        return {"item": i}

    app = bastion.protect(cast(ASGIApp, litestar.Litestar(route_handlers=[item])))
    transport = httpx.ASGITransport(app=cast(Any, app), client=PROXY)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        assert (await client.get("/items/7")).json() == {"item": 7}
        assert (await client.get("/items/8")).status_code == 200
        assert (await client.get("/nowhere/7")).status_code == 404
        metrics = (await client.get("/api/metrics")).text
    counted = {
        (sample.labels["route"], sample.labels["status"]): sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "bastion_http_requests_total"
    }
    # Litestar's template drops the converter, as its own Prometheus plugin's label does.
    assert counted == {("/items/{i}", "200"): 2.0, ("<unmatched>", "404"): 1.0}
