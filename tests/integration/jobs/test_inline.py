"""Inline jobs (the embedded default, SQLite): the demo job runs in the app's own process.

The real app under uvicorn, no worker anywhere: a deferred job runs after its
response, failures are retried by the task's rule and never reach the
request, periodic work (the session clean-up) happens without anyone asking.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.integration.jobs.conftest import BACKOFF, RETRY_WAITS, defer, poll, wait_for
from tests.support.servers import AppServer


@pytest.fixture(scope="module")
def app() -> Iterator[AppServer]:
    server = AppServer(
        {
            "METRICS_ENABLED": "true",
            "JOBS_SESSION_CLEANUP_SECONDS": "1",
            "SANDBOX_DEMO_BACKOFF": BACKOFF,
        }
    ).start()
    yield server
    server.stop()


def test_health_says_jobs_false_inline(app: AppServer) -> None:
    body = httpx.get(app.url + "/api/health", timeout=5).json()
    assert body["status"] == "ok"
    assert body["jobs"] is False


def test_a_demo_job_runs_inline_once(app: AppServer) -> None:
    job_id = defer(app.url)
    state = wait_for(
        lambda: (s := poll(app.url, job_id))["status"] == "succeeded" and s, 10, "job succeeded"
    )
    assert state == {"id": job_id, "status": "succeeded", "attempts": 1, "completed_runs": 1}


def test_a_flaky_job_is_retried_then_succeeds(app: AppServer) -> None:
    job_id = defer(app.url, fail_times=1)
    state = wait_for(
        lambda: (s := poll(app.url, job_id))["status"] == "succeeded" and s, 15, "job succeeded"
    )
    assert state["attempts"] == 2  # one failure, one retry after the first backoff
    assert state["completed_runs"] == 1


def test_a_failing_job_never_fails_its_request(app: AppServer) -> None:
    started = time.monotonic()
    response = httpx.post(
        app.url + "/api/sandbox/jobs",
        json={"always_fail": True},
        headers={"Origin": app.url},
        timeout=10,
    )
    assert response.status_code == 201
    job_id = response.json()["id"]
    # 4 runs: the first and 3 retries, RETRY_WAITS apart.
    state = wait_for(
        lambda: (s := poll(app.url, job_id))["status"] == "failed" and s, 30, "job failed"
    )
    assert time.monotonic() - started >= sum(RETRY_WAITS)  # the backoff was waited
    assert state["attempts"] == 4
    assert state["completed_runs"] == 0
    metrics = httpx.get(app.url + "/api/metrics", timeout=5).text
    assert 'bastion_jobs_failed_total{task="sandbox.demo"} 1.0' in metrics
    assert 'bastion_jobs_retried_total{task="sandbox.demo"}' in metrics
    # Inline jobs need no worker: the alert on "no live worker" reads this as 0.
    assert "\nbastion_jobs_enabled 0.0\n" in metrics
    page = httpx.get(app.url + "/sandbox/jobs", timeout=5).text
    assert "DemoFailure" in page
    assert "Jobs run inline" in page
    assert "internal server error" not in app.output()


def test_expired_and_idle_sessions_disappear_by_themselves(app: AppServer) -> None:
    path = app.env["DATABASE_URL"].removeprefix("sqlite:///")
    app.create_admin("cleanup@example.com", "a long enough password 1")
    now = datetime.now(UTC).replace(tzinfo=None)
    with sqlite3.connect(path) as db:
        (user_id,) = db.execute(
            "SELECT id FROM bastion_user WHERE email = 'cleanup@example.com'"
        ).fetchone()
        rows = [
            (
                "expired",
                now - timedelta(days=20),
                now - timedelta(hours=1),
                now - timedelta(hours=1),
            ),
            ("idle", now - timedelta(days=3), now + timedelta(days=10), now - timedelta(days=2)),
            ("live", now, now + timedelta(days=14), now),
        ]
        for name, created, expires, seen in rows:
            db.execute(
                "INSERT INTO bastion_session "
                "(public_id, token_hash, user_id, created_at, expires_at, last_seen_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (name, name.ljust(64, "0"), user_id, created, expires, seen),
            )

    def remaining() -> list[str] | None:
        with sqlite3.connect(path) as db:
            hashes = [
                r[0][:7].rstrip("0") for r in db.execute("SELECT token_hash FROM bastion_session")
            ]
        return hashes if hashes == ["live"] else None

    assert wait_for(remaining, 10, "expired sessions removed") == ["live"]
