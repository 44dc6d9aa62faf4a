"""The adoption examples, end to end: two real instances each, one Valkey, one PostgreSQL.

What the README promises an adopter, checked on apps whose login routes
bastion did not write: fastapi-users' ``/auth/jwt/login`` (400
``LOGIN_BAD_CREDENTIALS``) and a Litestar app's own ``/login`` (401). A failed
login lands in ``bastion audit --json`` with the client IP the trusted-proxy
resolver saw, the limit holds across both instances, a cross-site POST is
refused, and ``/api/health`` answers. With PostgreSQL stopped under a running
instance, a route that needs the database answers 503 with ``Retry-After``
(never a 500), and after it returns, a burst of requests gets no 5xx.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.postgres import PostgresServer, unique_database_name
from tests.support.servers import AppServer, run_cli

LIMIT = 4
PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Example:
    factory: str
    login_path: str
    refused_status: int
    #: Sends one login attempt: (base URL, account, password, extra headers) -> response.
    login: Callable[[str, str, str, dict[str, str]], httpx.Response]
    #: Creates the account the tests sign in as, the app's own way.
    register: Callable[[str, str], None]
    #: A request to a route of the app's that needs the database: base URL -> response.
    needs_database: Callable[[str], httpx.Response]


def _form_login(path: str) -> Callable[[str, str, str, dict[str, str]], httpx.Response]:
    def login(url: str, account: str, password: str, headers: dict[str, str]) -> httpx.Response:
        return httpx.post(
            url + path,
            data={"username": account, "password": password},
            headers={"Origin": url, **headers},
        )

    return login


def _json_login(url: str, account: str, password: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(
        url + "/login",
        json={"username": account, "password": password},
        headers={"Origin": url, **headers},
    )


def _register_fastapi_users(url: str, account: str) -> None:
    created = httpx.post(
        url + "/auth/register",
        json={"email": account, "password": PASSWORD},
        headers={"Origin": url},
    )
    assert created.status_code == 201, created.text


EXAMPLES = {
    "fastapi-users": Example(
        factory="examples.fastapi_users_app.app:create_app",
        login_path="/auth/jwt/login",
        refused_status=400,
        login=_form_login("/auth/jwt/login"),
        register=_register_fastapi_users,
        # fastapi-users reads the user table before it checks the password.
        needs_database=lambda url: _form_login("/auth/jwt/login")(
            url, "nobody@example.com", "wrong password", {"Accept": "application/json"}
        ),
    ),
    "litestar": Example(
        factory="examples.litestar_app.app:create_app",
        login_path="/login",
        refused_status=401,
        login=_json_login,
        register=lambda url, account: None,  # its one password comes from the environment
        needs_database=lambda url: httpx.get(url + "/now", headers={"Accept": "application/json"}),
    ),
}


@pytest.fixture(params=sorted(EXAMPLES))
def example(request: pytest.FixtureRequest) -> Example:
    return EXAMPLES[request.param]


def _env(valkey_url: str, postgres_url: str) -> dict[str, str]:
    return {
        "VALKEY_URL": valkey_url,
        "DATABASE_URL": postgres_url,
        "METRICS_ENABLED": "true",
        "SIGN_IN_RATE_LIMIT": f"{LIMIT}/minute",
        "SIGN_IN_ACCOUNT_RATE_LIMIT": "10000/minute",
        "EXAMPLE_PASSWORD": PASSWORD,
    }


@pytest.fixture
def instance(example: Example, valkey_url: str, postgres_url: str) -> Iterator[AppServer]:
    """One instance, for what a single process shows (starting a second costs 2 s or more)."""
    env = _env(valkey_url, postgres_url)
    server = AppServer(env, factory=example.factory, ready_path="/api/health/live").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def instances(
    example: Example, valkey_url: str, postgres_url: str
) -> Iterator[tuple[AppServer, AppServer]]:
    env = _env(valkey_url, postgres_url)
    first = AppServer(env, factory=example.factory, ready_path="/api/health/live").start()
    second = AppServer(env, factory=example.factory, ready_path="/api/health/live")
    second.start(migrate=False)  # one database, migrated once
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


#: A client that reads JSON, whatever the login route takes.
JSON_CLIENT = {"Accept": "application/json"}


def _audit(database_url: str, action: str) -> list[dict[str, Any]]:
    done = run_cli(
        "audit",
        "--json",
        "--action",
        action,
        env={**os.environ, "DATABASE_URL": database_url},
    )
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def test_failed_logins_through_a_route_bastion_did_not_write(
    example: Example, instances: tuple[AppServer, AppServer], postgres_url: str
) -> None:
    first, second = instances
    account = "ada@example.com"
    example.register(first.url, account)

    statuses = []
    for attempt in range(LIMIT + 2):
        server = (first, second)[attempt % 2]
        response = example.login(server.url, account, "wrong password", JSON_CLIENT)
        statuses.append(response.status_code)
    # The shared limit: four reach the app's own check, across both instances.
    assert statuses == [example.refused_status] * LIMIT + [429, 429]
    assert int(response.headers["retry-after"]) >= 1
    assert response.json() == {  # the guard answers like every refusal of bastion
        "error": "Too Many Requests",
        "reason": "RATE_LIMITED",
        "hint": f"wait {response.headers['retry-after']} seconds, then try again",
    }
    assert response.headers["ratelimit-limit"] == str(LIMIT)

    failed = _audit(postgres_url, "auth.sign_in.failed")
    assert len(failed) == LIMIT
    assert {(row["subject"], row["client_ip"]) for row in failed} == {(account, "127.0.0.1")}

    # A right password from another client (through the trusted loopback proxy).
    elsewhere = {"X-Forwarded-For": "198.51.100.7"}
    signed_in = example.login(second.url, account, PASSWORD, elsewhere)
    assert 200 <= signed_in.status_code < 300, signed_in.text
    (succeeded,) = _audit(postgres_url, "auth.sign_in.succeeded")
    assert succeeded["client_ip"] == "198.51.100.7"


def test_the_envelope_and_the_operations_endpoints(example: Example, instance: AppServer) -> None:
    first = instance
    cross_site = httpx.post(
        first.url + example.login_path,
        data={"username": "x@example.com", "password": "y"},
        headers={"Origin": "https://evil.example"},
    )
    assert cross_site.status_code == 403
    assert "ORIGIN_MISMATCH" in cross_site.text
    health = httpx.get(first.url + "/api/health")
    assert health.status_code == 200
    assert health.json() == {
        "status": "ok",
        "database": True,
        "schema": "current",
        "jobs": False,
        "cache": True,
        "metrics": True,
    }
    assert health.headers["x-content-type-options"] == "nosniff"
    assert "bastion_http_requests_total" in httpx.get(first.url + "/api/metrics").text


def test_refusals_are_audited_in_aggregate_after_a_graceful_stop(
    example: Example, instances: tuple[AppServer, AppServer], postgres_url: str
) -> None:
    first, second = instances
    statuses = [
        example.login(first.url, "eve@example.com", "guess", {}).status_code
        for _ in range(LIMIT + 5)
    ]
    assert statuses.count(429) == 5
    first.stop()
    second.stop()
    (blocked,) = _audit(postgres_url, "auth.sign_in.blocked")
    assert blocked["details"]["count"] == 5
    assert blocked["client_ip"] == "127.0.0.1"


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PostgresServer]:
    """A cluster of this module's own, to stop under a running app (the session's stays up)."""
    server = PostgresServer().start()
    yield server
    server.close()


def test_a_stopped_database_answers_503_then_recovers_with_no_5xx(
    example: Example, valkey_url: str, own_postgres: PostgresServer
) -> None:
    if not own_postgres.running:  # the other example's run stopped it on failure
        own_postgres.start()
    url = own_postgres.create_database(unique_database_name("adoption_down"))
    env = {**_env(valkey_url, url), "SIGN_IN_RATE_LIMIT": "1000/minute"}  # no 429 in the way
    server = AppServer(env, factory=example.factory, ready_path="/api/health/live").start()
    try:
        up = example.needs_database(server.url).status_code
        assert up in (200, example.refused_status)  # the app's own answer, from the database
        own_postgres.stop()
        down = [example.needs_database(server.url) for _ in range(3)]
        assert [r.status_code for r in down] == [503] * 3, [r.text for r in down]
        for response in down:
            assert response.headers["retry-after"] == "5"
            assert response.json()["reason"] == "DATABASE_UNAVAILABLE"
        own_postgres.start()
        # The pool's connections died with the server: none may fail a request now.
        statuses = [example.needs_database(server.url).status_code for _ in range(20)]
        assert statuses == [up] * 20
        # Restarted while the app was idle: its pooled connection is dead, and no request
        # saw it die. pool_pre_ping replaces it before a request gets it.
        own_postgres.stop()
        own_postgres.start()
        statuses = [example.needs_database(server.url).status_code for _ in range(10)]
        assert statuses == [up] * 10
        output = server.output()
        assert output.count("database unavailable (") == 3, output[-3000:]  # one line each
        assert "Traceback" not in output
        assert "ERROR" not in output
    finally:
        server.stop()
