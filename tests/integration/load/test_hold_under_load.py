"""A busy app keeps its healthy Valkey, and a sign-in flood costs no database work.

Real servers only: the example app under uvicorn (two processes where it
says so), a real Valkey, a real PostgreSQL, and wrk saturating the app over
keep-alive connections. Each run is a few seconds. What is asserted is
behaviour under load (misses, breaker, who decided, what was written), never
a speed: speed is the benchmark's job (``bench/``, "cache under saturation"
and "sign-in flood").
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
from typing import Any

import httpx
import pytest
from harness.wrk import WrkRun

from tests.support.load import scrape, total, wrk
from tests.support.servers import AppServer, HungServer, run_cli

SECONDS = 6
#: uvicorn re-raises SIGTERM after its graceful shutdown, so -15 is a clean exit.
GRACEFUL = (0, -signal.SIGTERM)


@pytest.mark.parametrize(
    ("connections", "through"), [(16, "plain"), (64, "plain"), (64, "sentinel")]
)
def test_saturating_reads_of_a_stored_key_stay_hits(
    request: pytest.FixtureRequest, connections: int, through: str
) -> None:
    """``through``: the Valkey's own URL, or a Sentinel's that names it as the primary."""
    if through == "plain":
        url = request.getfixturevalue("valkey_url")
    else:
        url = request.getfixturevalue("sentinel_managed").url
    app = AppServer({"VALKEY_URL": url, "METRICS_ENABLED": "true"}).start()
    try:
        stored = httpx.put(
            app.url + "/api/sandbox/cache/hot",
            json={"value": {"n": 1}, "ttl": 600},
            headers={"Origin": app.url},
        )
        assert stored.json()["value"] == {"n": 1}
        run = wrk(app.url + "/api/sandbox/cache/hot", seconds=SECONDS, connections=connections)
        samples = scrape(app.url)
    finally:
        app.stop()
    hits = total(samples, "bastion_cache_operations_total", result="hit")
    misses = total(samples, "bastion_cache_operations_total", result="miss")
    assert run.non_2xx == 0
    assert run.socket_errors == 0
    assert hits + misses >= run.requests  # every request read the key once
    assert hits > 1000, "the load did not saturate anything"
    assert misses <= 0.001 * (hits + misses), f"{misses:.0f} misses of {hits + misses:.0f}"
    assert app.returncode in GRACEFUL
    assert "breaker valkey: closed -> open" not in app.final_output
    assert total(samples, "bastion_cache_breaker_state", breaker="valkey") == 0
    # The operator's signal for all of this is exported.
    assert total(samples, "bastion_event_loop_lag_seconds_count") > 0


def test_a_sign_in_flood_from_one_ip_against_two_instances(
    valkey_url: str, postgres_url: str
) -> None:
    limit = 10
    env = {
        "VALKEY_URL": valkey_url,
        "DATABASE_URL": postgres_url,
        "METRICS_ENABLED": "true",
        "SIGN_IN_RATE_LIMIT": f"{limit}/minute",
        # The per-IP limit is the one under test: the account limit must not bind first.
        "SIGN_IN_ACCOUNT_RATE_LIMIT": "10000/minute",
    }
    first = AppServer(env).start()
    second = AppServer(env).start(migrate=False)
    servers = (first, second)
    try:
        body = '{"email": "victim@example.com", "password": "not the password"}'
        runs = _flood(servers, body)
        samples = [scrape(server.url) for server in servers]
    finally:
        for server in servers:
            server.stop()

    assert all(server.returncode in GRACEFUL for server in servers)
    route = {"route": "/api/auth/sign-in", "method": "POST"}
    answered_429 = sum(
        total(s, "bastion_http_requests_total", status="429", **route) for s in samples
    )
    answered_401 = sum(
        total(s, "bastion_http_requests_total", status="401", **route) for s in samples
    )
    server_errors = sum(
        v
        for s in samples
        for (name, labels), v in s.items()
        if name == "bastion_http_requests_total" and dict(labels)["status"].startswith("5")
    )
    # wrk stops counting with up to one request in flight per connection.
    answered = answered_401 + answered_429
    assert 0 <= answered - sum(run.requests for run in runs) <= 2 * 32
    assert server_errors == 0
    assert sum(run.socket_errors for run in runs) == 0
    assert answered_401 == limit, "exactly the shared limit reached the password check"
    assert answered_429 > 1000
    for s in samples:  # Valkey was healthy: it took every decision
        assert total(s, "bastion_rate_limit_fallbacks_total") == 0

    failed = _audit(postgres_url, "auth.sign_in.failed")
    blocked = _audit(postgres_url, "auth.sign_in.blocked")
    assert len(failed) == limit
    assert {row["client_ip"] for row in failed + blocked} == {"127.0.0.1"}
    assert 2 <= len(blocked) <= 4 * (SECONDS + 2), "one row per instance and flush window"
    assert sum(row["details"]["count"] for row in blocked) == answered_429


def _audit(database_url: str, action: str) -> list[dict[str, Any]]:
    """The rows an operator sees with ``bastion audit --json --action ACTION``."""
    done = run_cli(
        "audit",
        "--json",
        "--limit",
        "10000",
        "--action",
        action,
        env={**os.environ, "DATABASE_URL": database_url},
    )
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def _flood(servers: tuple[AppServer, ...], body: str) -> list[WrkRun]:
    headers = {"Content-Type": "application/json"}
    with concurrent.futures.ThreadPoolExecutor(len(servers)) as pool:
        futures = [
            pool.submit(
                wrk,
                server.url + "/api/auth/sign-in",
                seconds=SECONDS,
                connections=32,
                method="POST",
                headers={**headers, "Origin": server.url},
                body=body,
            )
            for server in servers
        ]
        return [future.result() for future in futures]


def test_a_hung_valkey_under_the_same_load_still_opens_the_breaker(
    hung_server: HungServer,
) -> None:
    """The other side of the rate rule: when every call fails, the breaker opens at once."""
    connections = 16
    app = AppServer({"VALKEY_URL": hung_server.url, "METRICS_ENABLED": "true"}).start()
    try:
        run = wrk(app.url + "/api/sandbox/cache/hot", seconds=3, connections=connections)
        samples = scrape(app.url)
    finally:
        app.stop()
    assert run.non_2xx == 0
    assert "breaker valkey: closed -> open" in app.final_output
    # Only the calls in flight when it opened, and each cool-down's one probe, waited.
    errors = total(samples, "bastion_cache_operations_total", result="error")
    assert 5 <= errors <= connections + 5 + 2
    assert run.requests > 50 * errors, "after opening, requests no longer waited on Valkey"


def test_a_sign_in_flood_with_valkey_hung_is_limited_locally(hung_server: HungServer) -> None:
    limit = 10
    app = AppServer(
        {
            "VALKEY_URL": hung_server.url,
            "METRICS_ENABLED": "true",
            "SIGN_IN_RATE_LIMIT": f"{limit}/minute",
            "SIGN_IN_ACCOUNT_RATE_LIMIT": "10000/minute",
        }
    ).start()
    try:
        run = wrk(
            app.url + "/api/auth/sign-in",
            seconds=3,
            connections=16,
            method="POST",
            headers={"Content-Type": "application/json", "Origin": app.url},
            body='{"email": "victim@example.com", "password": "not the password"}',
        )
        samples = scrape(app.url)
    finally:
        app.stop()
    route = {"route": "/api/auth/sign-in", "method": "POST"}
    assert total(samples, "bastion_http_requests_total", status="401", **route) == limit
    assert total(samples, "bastion_http_requests_total", status="429", **route) > 100
    assert run.socket_errors == 0
    assert total(samples, "bastion_rate_limit_fallbacks_total") >= run.requests
    assert total(samples, "bastion_cache_breaker_state", breaker="ratelimit") == 2
    assert app.final_output.count("limiting in this process only") == 1
