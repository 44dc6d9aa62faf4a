"""/api/metrics: every envelope decision is counted, with bounded labels."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bastion.config import Settings, load_settings
from bastion.db import migrate
from bastion.ops import Metrics
from bastion_example.app import create_app
from tests.integration.auth.conftest import inner_app
from tests.support.servers import ROOT, ValkeyServer

SAME_ORIGIN = {"sec-fetch-site": "same-origin"}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


class Client:
    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings)
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app, client=("127.0.0.1", 1)),
            base_url="http://testserver",
        )

    async def scrape(self) -> Samples:
        response = await self.http.get("/api/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=")
        return parse(response.text)

    async def close(self) -> None:
        await self.http.aclose()
        state = inner_app(self.app).state
        await state.auth.limiter.aclose()
        await state.database.dispose()


@pytest.fixture
async def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    await migrate(url)
    return url


@pytest.fixture
async def client(database: str, valkey_url: str) -> AsyncIterator[Client]:
    settings = load_settings(
        DATABASE_URL=database,
        APP_URL="http://testserver",
        ALLOWED_HOSTS="testserver",
        VALKEY_URL=valkey_url,
        METRICS_ENABLED="true",
        SIGN_IN_RATE_LIMIT="2/minute",
        CACHE_BREAKER_FAILURES="2",
    )
    instance = Client(settings)
    yield instance
    await instance.close()


async def test_every_envelope_decision_is_counted(
    client: Client, valkey_server: ValkeyServer
) -> None:
    http = client.http
    assert (
        await http.post("/api/auth/sign-in", headers={"origin": "https://evil.example"})
    ).status_code == 403
    assert (await http.post("/api/auth/sign-in")).status_code == 403
    assert (await http.get("/", headers={"host": "evil.example"})).status_code == 400
    creds = {"email": "a@example.com", "password": "wrong password"}
    statuses = [
        (await http.post("/api/auth/sign-in", json=creds, headers=SAME_ORIGIN)).status_code
        for _ in range(3)
    ]
    assert statuses == [401, 401, 429]
    assert (await http.get("/api/sandbox/cache/absent")).json()["value"] is None
    await http.put("/api/sandbox/cache/k", json={"value": 1, "ttl": 60}, headers=SAME_ORIGIN)
    assert (await http.get("/api/sandbox/cache/k")).json()["value"] == 1

    samples = await client.scrape()
    assert value(samples, "bastion_csrf_rejections_total", reason="ORIGIN_MISMATCH") == 1
    assert value(samples, "bastion_csrf_rejections_total", reason="NO_ORIGIN") == 1
    assert value(samples, "bastion_host_rejections_total", reason="HOST_NOT_ALLOWED") == 1
    assert value(samples, "bastion_rate_limit_hits_total", limiter="sign_in") == 1
    assert value(samples, "bastion_sign_in_failures_total", reason="unknown_user") == 2
    assert value(samples, "bastion_sign_in_failures_total", reason="rate_limited") == 1
    assert value(samples, "bastion_cache_operations_total", result="miss") == 1
    assert value(samples, "bastion_cache_operations_total", result="hit") == 1
    assert value(samples, "bastion_cache_breaker_state", breaker="valkey") == 0
    assert (
        value(
            samples,
            "bastion_http_requests_total",
            route="/api/auth/sign-in",
            method="POST",
            status="429",
        )
        == 1
    )
    assert (
        value(
            samples, "bastion_http_requests_total", route="<rejected>", method="POST", status="403"
        )
        == 2
    )
    assert (
        value(
            samples,
            "bastion_http_request_duration_seconds_count",
            route="/api/sandbox/cache/{key}",
            method="GET",
            status="200",
        )
        == 2
    )

    # Faults: Valkey dies. The cache counts errors and its breaker opens; the
    # limiter decides locally and counts the fallback.
    valkey_server.kill()
    for _ in range(3):
        assert (await http.get("/api/sandbox/cache/k")).status_code == 200
    # From another client: this one's refusal is remembered and needs no Valkey at all.
    await http.post(
        "/api/auth/sign-in",
        json={**creds, "email": "b@example.com"},
        headers={**SAME_ORIGIN, "x-forwarded-for": "198.51.100.9"},
    )
    samples = await client.scrape()
    assert value(samples, "bastion_cache_operations_total", result="error") >= 2
    assert value(samples, "bastion_cache_breaker_state", breaker="valkey") == 2
    assert value(samples, "bastion_rate_limit_fallbacks_total", limiter="sign_in") >= 1


async def test_unknown_paths_do_not_create_label_values(client: Client) -> None:
    for index in range(20):
        assert (await client.http.get(f"/no/such/page/{index}")).status_code == 404
    samples = await client.scrape()
    routes = {
        dict(labels).get("route")
        for (name, labels) in samples
        if name == "bastion_http_requests_total"
    }
    assert routes == {"<unmatched>"}
    assert (
        value(
            samples, "bastion_http_requests_total", route="<unmatched>", method="GET", status="404"
        )
        == 20
    )
    await client.http.request("BREW", "/")
    methods = {
        dict(labels).get("method")
        for (name, labels) in await client.scrape()
        if name == "bastion_http_requests_total"
    }
    assert "BREW" not in methods
    assert "OTHER" in methods


async def test_database_outage_is_counted(tmp_path: Path) -> None:
    settings = load_settings(
        DATABASE_URL="postgresql://nobody@127.0.0.1:1/none",
        DATABASE_TIMEOUT_MS="300",
        APP_URL="http://testserver",
        METRICS_ENABLED="true",
    )
    client = Client(settings)
    try:
        response = await client.http.post(
            "/api/auth/sign-in",
            json={"email": "a@example.com", "password": "whatever pass"},
            headers=SAME_ORIGIN,
        )
        assert response.status_code == 503
        await client.http.get("/api/health")
        samples = await client.scrape()
        assert value(samples, "bastion_database_unavailable_total") == 1
        assert value(samples, "bastion_health_checks_total", outcome="degraded") == 1
    finally:
        await client.close()


async def test_metrics_are_off_by_default(database: str) -> None:
    client = Client(load_settings(DATABASE_URL=database, APP_URL="http://testserver"))
    try:
        response = await client.http.get("/api/metrics")
        assert response.status_code == 404
    finally:
        await client.close()


WORKER = """
import sys
from bastion.ops import Metrics
metrics = Metrics()
for _ in range(int(sys.argv[1])):
    metrics.on_reject("csrf", "NO_ORIGIN")
metrics.observe_request("/x", "GET", 200, 0.01)
"""


def test_multiprocess_mode_aggregates_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two worker processes write samples; a scrape of either sees the sum."""
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": ""}
    for count in ("3", "4"):
        subprocess.run(
            [sys.executable, "-c", WORKER, count], env=env, cwd=ROOT, check=True, timeout=60
        )
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    samples = parse(Metrics().render().decode())
    assert value(samples, "bastion_csrf_rejections_total", reason="NO_ORIGIN") == 7
    assert (
        value(samples, "bastion_http_requests_total", route="/x", method="GET", status="200") == 2
    )
