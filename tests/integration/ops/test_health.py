"""/api/health on SQLite and PostgreSQL: up, stopped, hung, and back without a restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bastion.config import Settings, load_settings
from bastion.db import migrate
from bastion_example.app import create_app
from tests.integration.auth.conftest import inner_app
from tests.support.postgres import PostgresServer
from tests.support.servers import HungServer

TIMEOUT_MS = 500
MARGIN = 0.5


class Probe:
    """An in-process client; the load balancer's view of the app."""

    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings)
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app, client=("10.9.8.7", 1)),
            base_url="http://10.9.8.7:8000",  # probes send an IP as the Host
        )

    async def get(self, path: str) -> tuple[httpx.Response, float]:
        started = time.monotonic()
        response = await self.client.get(path)
        return response, time.monotonic() - started

    async def close(self) -> None:
        await self.client.aclose()
        await inner_app(self.app).state.database.dispose()


def settings_for(url: str, **extra: str) -> Settings:
    values = {"DATABASE_URL": url, "DATABASE_TIMEOUT_MS": str(TIMEOUT_MS), **extra}
    return load_settings(**values)


@pytest.fixture
async def sqlite_probe(tmp_path: Path) -> AsyncIterator[Probe]:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    await migrate(url)
    probe = Probe(settings_for(url))
    yield probe
    await probe.close()


async def test_sqlite_health_is_ok_with_feature_flags(sqlite_probe: Probe) -> None:
    response, _ = await sqlite_probe.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": True,
        "schema": "current",
        "jobs": False,
        "cache": False,
        "metrics": False,
    }
    assert response.headers["cache-control"] == "no-store"


async def test_flags_follow_the_configuration(tmp_path: Path, valkey_url: str) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    await migrate(url)
    probe = Probe(settings_for(url, VALKEY_URL=valkey_url, METRICS_ENABLED="true"))
    try:
        body = (await probe.get("/api/health"))[0].json()
        assert (body["cache"], body["metrics"], body["jobs"]) == (True, True, False)
    finally:
        await probe.close()


async def test_liveness_touches_no_dependency(tmp_path: Path) -> None:
    # A database URL that cannot work: liveness must not care.
    probe = Probe(settings_for("postgresql://nobody@127.0.0.1:1/none"))
    try:
        live, _ = await probe.get("/api/health/live")
        assert live.status_code == 200
        assert live.json() == {"status": "ok"}
        health, elapsed = await probe.get("/api/health")
        assert health.status_code == 503
        assert elapsed < TIMEOUT_MS / 1000 + MARGIN
    finally:
        await probe.close()


async def test_postgres_down_hung_and_back(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    await migrate(postgres_url)
    probe = Probe(settings_for(postgres_url))
    try:
        response, _ = await probe.get("/api/health")
        assert response.status_code == 200
        assert response.json()["database"] is True
        assert response.json()["schema"] == "current"

        postgres_server.stop()
        response, elapsed = await probe.get("/api/health")
        assert response.status_code == 503
        assert response.json() == {"status": "degraded", "database": False}
        assert elapsed < TIMEOUT_MS / 1000 + MARGIN
        assert "Traceback" not in response.text

        postgres_server.start()
        response, _ = await probe.get("/api/health")
        assert response.status_code == 200, "recovers without restarting the app"
    finally:
        await probe.close()


async def test_hung_database_gives_503_within_the_timeout(hung_server: HungServer) -> None:
    probe = Probe(settings_for(f"postgresql://postgres@127.0.0.1:{hung_server.port}/db"))
    try:
        for _ in range(3):
            response, elapsed = await probe.get("/api/health")
            assert response.status_code == 503
            assert response.json() == {"status": "degraded", "database": False}
            assert elapsed < TIMEOUT_MS / 1000 + MARGIN, f"{elapsed:.3f}s"
        assert hung_server.accepted >= 1
    finally:
        await probe.close()


async def test_health_is_exempt_from_the_host_check(sqlite_probe: Probe) -> None:
    other = await sqlite_probe.client.get("/", headers={"host": "10.9.8.7:8000"})
    assert other.status_code == 400
    health = await sqlite_probe.client.get("/api/health", headers={"host": "10.9.8.7:8000"})
    assert health.status_code == 200


async def test_concurrent_probes_against_a_hung_database(hung_server: HungServer) -> None:
    probe = Probe(settings_for(f"postgresql://postgres@127.0.0.1:{hung_server.port}/db"))
    try:
        started = time.monotonic()
        results = await asyncio.gather(*(probe.get("/api/health") for _ in range(5)))
        assert all(r.status_code == 503 for r, _ in results)
        assert time.monotonic() - started < TIMEOUT_MS / 1000 + MARGIN * 2
    finally:
        await probe.close()
