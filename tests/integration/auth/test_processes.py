"""The sign-in envelope across real processes: two instances, a dying Valkey, a stopped PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.postgres import PostgresServer
from tests.support.servers import AppServer, ValkeyServer, run_cli
from tests.support.servers import two_instances as two_app_servers

ORIGIN_HEADERS = {"sec-fetch-site": "same-origin"}


def attempt(server: AppServer, email: str = "ada@example.com") -> httpx.Response:
    return httpx.post(
        server.url + "/api/auth/sign-in",
        json={"email": email, "password": "wrong password"},
        headers=ORIGIN_HEADERS,
        timeout=10,
    )


def _env(valkey_url: str, postgres_url: str) -> dict[str, str]:
    return {
        "VALKEY_URL": valkey_url,
        "DATABASE_URL": postgres_url,
        "SIGN_IN_RATE_LIMIT": "6/minute",
        "SIGN_IN_ACCOUNT_RATE_LIMIT": "100/minute",
        "CACHE_COMMAND_TIMEOUT_MS": "200",
    }


@pytest.fixture
def one_instance(valkey_url: str, postgres_url: str) -> Iterator[AppServer]:
    """One instance, for what a single process shows (starting a second costs 2 s or more)."""
    server = AppServer(_env(valkey_url, postgres_url)).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def two_instances(valkey_url: str, postgres_url: str) -> Iterator[tuple[AppServer, AppServer]]:
    env = _env(valkey_url, postgres_url)
    with two_app_servers(env) as servers:
        yield servers


def test_the_limit_holds_in_total_across_two_instances(
    two_instances: tuple[AppServer, AppServer],
) -> None:
    first, second = two_instances
    assert first.process is not None
    assert second.process is not None
    assert first.process.pid != second.process.pid
    statuses = [attempt(first if i % 2 == 0 else second).status_code for i in range(10)]
    assert statuses == [401] * 6 + [429] * 4


def test_killed_valkey_falls_back_to_the_local_limiter_without_5xx(
    one_instance: AppServer, valkey_server: ValkeyServer
) -> None:
    first = one_instance
    assert [attempt(first).status_code for _ in range(2)] == [401, 401]
    valkey_server.kill()
    statuses = [attempt(first).status_code for _ in range(10)]
    assert all(status in (401, 429) for status in statuses), statuses
    # Still limiting: the local limiter allows at most the configured 6 on its own.
    assert statuses.count(401) <= 6
    assert statuses[-1] == 429
    # The fault is logged once, not once per request.
    assert first.output().count("limiting in this process only until it answers again") == 1


def test_stopped_postgres_gives_503_then_recovers_by_itself(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    server = AppServer({"DATABASE_URL": postgres_url}).start()
    try:
        assert attempt(server).status_code == 401
        postgres_server.stop()
        started = time.monotonic()
        down = attempt(server)
        elapsed = time.monotonic() - started
        assert down.status_code == 503
        assert down.headers["retry-after"] == "5"
        assert down.json() == {
            "error": "Service Unavailable",
            "reason": "DATABASE_UNAVAILABLE",
            "hint": "try again in 5 seconds",
        }
        assert elapsed < 5
        page = httpx.post(
            server.url + "/sign-in",
            data={"email": "ada@example.com", "password": "wrong password"},
            headers=ORIGIN_HEADERS,
            timeout=10,
        )
        assert page.status_code == 503
        assert "DATABASE_UNAVAILABLE" in page.text
        assert "Traceback" not in page.text
        postgres_server.start()
        assert attempt(server).status_code == 401
    finally:
        server.stop()


def test_createuser_sign_up_and_audit_json_from_the_cli(tmp_path: object) -> None:
    server = AppServer({"SIGN_IN_RATE_LIMIT": "100/minute"}).start()
    env_db = {"DATABASE_URL": server.env["DATABASE_URL"], "PATH": ""}
    try:
        created = run_cli(
            "createuser",
            "--email",
            "Root@Example.com",
            "--admin",
            env=env_db,
            stdin="a strong admin password\n",
        )
        assert created.returncode == 0, created.stderr
        assert created.stdout.strip() == "bastion: created admin user root@example.com"
        signed_up = httpx.post(
            server.url + "/api/auth/sign-up",
            json={"email": "ada@example.com", "password": "correct horse battery"},
            headers=ORIGIN_HEADERS,
            timeout=10,
        )
        assert signed_up.status_code == 201
        assert attempt(server).status_code == 401
        audit = run_cli(
            "audit",
            "--json",
            "--limit",
            "5",
            "--action",
            "auth.sign_in.failed",
            env=env_db,
        )
        assert audit.returncode == 0, audit.stderr
        (row,) = json.loads(audit.stdout)
        assert row["action"] == "auth.sign_in.failed"
        assert row["subject"] == "ada@example.com"
        assert row["client_ip"] == "127.0.0.1"
        assert row["details"] == {"reason": "bad_password"}
        text_out = run_cli(
            "audit",
            "--limit",
            "2",
            env=env_db,
        )
        assert "auth.sign_in.failed" in text_out.stdout
        assert "subject='ada@example.com'" in text_out.stdout
    finally:
        server.stop()


def test_cli_reports_a_down_database_in_one_line(postgres_server: PostgresServer) -> None:
    url = postgres_server.url_for("postgres").replace(str(postgres_server.port), "1")
    result = run_cli(
        "audit",
        "--json",
        env={"DATABASE_URL": url, "PATH": ""},
    )
    assert result.returncode == 1
    assert result.stderr.strip().startswith("bastion: database unavailable")
    assert "Traceback" not in result.stderr


def test_cli_says_to_migrate_an_empty_database(tmp_path: Path) -> None:
    result = run_cli(
        "audit",
        env={"DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}", "PATH": ""},
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "bastion: the database has no bastion tables yet; run `bastion migrate` first"
    )
