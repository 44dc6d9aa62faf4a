"""Jobs on PostgreSQL: real ``bastion worker`` processes, a real app, real faults.

Every wait is bounded. The demo job's API reports ``completed_runs`` from
``bastion_job_run``, so "exactly one run completed" is read from what the job
bodies did, not from the queue's opinion.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from functools import partial

import httpx
import pytest

from tests.integration.jobs.conftest import BACKOFF, RETRY_WAITS, defer, poll, wait_for
from tests.support.postgres import PostgresServer
from tests.support.servers import AppServer, run_cli
from tests.support.workers import WorkerProcess, cpu_seconds

#: Short enough for a test: a silent worker is presumed dead after 6 s.
STALLED = "6"
#: How long a worker that is waiting for its database is watched (its retries come every second).
WAITING_WATCHED = 2.0


@pytest.fixture
def env(postgres_url: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("APP_", "DATABASE_", "JOBS_"))},
        "DATABASE_URL": postgres_url,
        "JOBS_ENABLED": "true",
        "JOBS_STALLED_SECONDS": STALLED,
        "METRICS_ENABLED": "true",
        "SANDBOX_DEMO_BACKOFF": BACKOFF,
    }


@pytest.fixture
def app(env: dict[str, str]) -> Iterator[AppServer]:
    server = AppServer(
        {
            k: env[k]
            for k in ("DATABASE_URL", "JOBS_ENABLED", "METRICS_ENABLED", "SANDBOX_DEMO_BACKOFF")
        }
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def workers(env: dict[str, str]) -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.close()


def _start(workers: list[WorkerProcess], env: dict[str, str]) -> WorkerProcess:
    worker = WorkerProcess(env, "--concurrency", "2", "--grace", "10").start()
    workers.append(worker)
    return worker


def _done(base: str, job_id: int, status: str = "succeeded") -> object:
    state = poll(base, job_id)
    return state["status"] == status and state


def _heartbeats(base: str) -> int:
    """How many workers the sandbox page lists with a heartbeat in the database."""
    return httpx.get(base + "/sandbox/jobs", timeout=5).text.count(" s ago")


def _done_after_outage(base: str, job_id: int) -> object:
    """Like :func:`_done`, while the database comes back: a 503 is an honest "not yet"."""
    response = httpx.get(f"{base}/api/sandbox/jobs/{job_id}", timeout=10)
    if response.status_code == 503:
        assert response.headers.get("retry-after"), response.headers
        return False
    assert response.status_code == 200, response.text  # never a 500 on a stale connection
    state: dict[str, object] = response.json()
    return state["status"] == "succeeded" and state


def test_two_workers_share_a_queue_and_a_job_runs_once(
    app: AppServer, env: dict[str, str], workers: list[WorkerProcess]
) -> None:
    _start(workers, env)
    _start(workers, env)
    ids = [defer(app.url, seconds=0.2) for _ in range(6)]
    for job_id in ids:
        state = wait_for(partial(_done, app.url, job_id), 30, f"job {job_id} succeeded")
        assert state["attempts"] == 1
        assert state["completed_runs"] == 1
    health = httpx.get(app.url + "/api/health", timeout=5).json()
    assert health["jobs"] is True
    wait_for(lambda: _heartbeats(app.url) >= 2, 20, "two workers with a heartbeat on the page")
    page = httpx.get(app.url + "/sandbox/jobs", timeout=5).text
    assert "Jobs are enabled" in page
    checked = run_cli("check", "--deploy", "--json", env=env)
    assert "bastion.W060" not in checked.stdout, checked.stdout
    assert "bastion.W061" not in checked.stdout


def test_kill_9_mid_job_runs_it_again_elsewhere_exactly_once(
    app: AppServer, env: dict[str, str], workers: list[WorkerProcess]
) -> None:
    first = _start(workers, env)
    job_id = defer(app.url, seconds=4)
    wait_for(lambda: _done(app.url, job_id, "running"), 20, "job running on the first worker")
    second = _start(workers, env)
    wait_for(lambda: _heartbeats(app.url) >= 2, 20, "the second worker's heartbeat")
    first.kill()
    killed = time.monotonic()
    state = wait_for(lambda: _done(app.url, job_id), 60, "job finished on the other worker")
    recovered = time.monotonic() - killed
    print(f"kill -9 recovery: {recovered:.1f}s, state {state}")
    assert recovered < 60
    assert state["attempts"] == 2
    assert state["completed_runs"] == 1
    assert second.alive()


def test_postgres_stopped_under_a_worker_then_back(
    app: AppServer,
    env: dict[str, str],
    workers: list[WorkerProcess],
    postgres_server: PostgresServer,
) -> None:
    worker = _start(workers, env)
    job_id = defer(app.url, seconds=3)
    wait_for(lambda: _done(app.url, job_id, "running"), 20, "job running")
    postgres_server.stop()
    try:
        # A worker that retries in a tight loop burns a whole core; one that waits
        # between attempts, next to nothing. Its CPU is read from the stop until it
        # has been waiting for the database for a while; a sixth is a generous line.
        before = cpu_seconds(worker.pid)
        stopped = time.monotonic()
        wait_for(
            lambda: (
                "waiting for the database" in (out := worker.output()) or "lost the database" in out
            ),
            30,
            "the worker noticed the outage",
        )
        time.sleep(WAITING_WATCHED)  # a span of time is what is measured here
        spent = cpu_seconds(worker.pid) - before
        window = time.monotonic() - stopped
        assert worker.alive(), worker.output()
        assert spent < window / 6, f"the worker spun: {spent:.2f}s of CPU in {window:.1f}s"
    finally:
        postgres_server.start()
    state = wait_for(
        lambda: _done_after_outage(app.url, job_id), 60, "the interrupted job finished"
    )
    assert state["completed_runs"] >= 1
    after = defer(app.url)
    wait_for(lambda: _done(app.url, after), 30, "a new job runs after the outage")
    assert worker.alive()
    assert "waiting for the database" in worker.output() or "lost the database" in worker.output()
    assert "password" not in worker.output().lower()


def test_a_failing_task_is_retried_with_backoff_then_failed(
    app: AppServer, env: dict[str, str], workers: list[WorkerProcess]
) -> None:
    _start(workers, env)
    started = time.monotonic()
    job_id = defer(app.url, always_fail=True)
    state = wait_for(lambda: _done(app.url, job_id, "failed"), 40, "job failed")
    assert time.monotonic() - started >= sum(RETRY_WAITS)  # the backoff was waited
    assert state["attempts"] == 4
    assert state["completed_runs"] == 0
    page = httpx.get(app.url + "/sandbox/jobs", timeout=5).text
    assert "DemoFailure" in page
    metrics = wait_for(
        lambda: (
            (m := httpx.get(app.url + "/api/metrics", timeout=5).text)
            and 'bastion_jobs{status="failed",task="sandbox.demo"} 1.0' in m
            and m
        ),
        15,
        "failed job in the metrics",
    )
    assert "bastion_jobs_worker_heartbeat_age_seconds" in metrics
    assert "\nbastion_jobs_enabled 1.0\n" in metrics


def test_sigterm_stops_a_worker_gracefully(
    app: AppServer, env: dict[str, str], workers: list[WorkerProcess]
) -> None:
    worker = _start(workers, env)
    job_id = defer(app.url, seconds=2)
    wait_for(lambda: _done(app.url, job_id, "running"), 20, "job running")
    assert worker.stop() == 0
    state = poll(app.url, job_id)
    assert state["status"] == "succeeded"  # finished before the worker left
    assert state["completed_runs"] == 1


def test_jobs_enabled_on_sqlite_stops_start_up_with_one_line() -> None:
    result = run_cli(
        "worker", env={**os.environ, "JOBS_ENABLED": "true", "DATABASE_URL": "sqlite:///x.db"}
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "JOBS_ENABLED" in lines[0]
    assert "PostgreSQL" in lines[0]
