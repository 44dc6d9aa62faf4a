"""/sandbox/jobs in a real browser: defer demo jobs and watch status and attempts change.

Inline (the embedded default) and on PostgreSQL with a real ``bastion worker``,
whose heartbeat the page shows. The page polls the JSON API itself (jobs.js),
so the browser sees the status move without a reload.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.support.servers import AppServer
from tests.support.workers import WorkerProcess


@pytest.fixture
def inline_app() -> Iterator[AppServer]:
    server = AppServer({}).start()
    yield server
    server.stop()


def test_inline_flaky_job_retries_then_succeeds(page: Page, inline_app: AppServer) -> None:
    page.goto(inline_app.url + "/sandbox/jobs")
    expect(page.locator("#jobs-state")).to_have_attribute("data-enabled", "false")
    page.select_option("#kind", "flaky")
    page.click("#defer")
    job = page.locator("#job")
    expect(job).to_be_visible()
    # Fails twice (2 s, then 4 s backoff), then succeeds: the poller shows every step.
    expect(page.locator("#job-attempts")).to_have_text("2", timeout=10_000)
    expect(job).to_have_attribute("data-status", "succeeded", timeout=15_000)
    expect(page.locator("#job-attempts")).to_have_text("3")
    expect(page.locator("#job-completed")).to_have_text("1")
    page.reload()
    expect(page.locator("#runs")).to_contain_text("DemoFailure")
    expect(page.locator("#no-workers")).to_contain_text("None")


def test_worker_runs_the_job_and_shows_its_heartbeat(page: Page, postgres_url: str) -> None:
    env = {"DATABASE_URL": postgres_url, "JOBS_ENABLED": "true", "JOBS_STALLED_SECONDS": "6"}
    app = AppServer(env).start()
    worker = WorkerProcess({**os.environ, **env}).start()
    try:
        page.goto(app.url + "/sandbox/jobs")
        expect(page.locator("#jobs-state")).to_have_attribute("data-enabled", "true")
        page.fill("#seconds", "1")
        page.click("#defer")
        job = page.locator("#job")
        expect(job).to_have_attribute("data-status", "running", timeout=15_000)
        expect(job).to_have_attribute("data-status", "succeeded", timeout=15_000)
        expect(page.locator("#job-completed")).to_have_text("1")
        page.reload()
        expect(page.locator("#workers")).to_contain_text("s ago")
    finally:
        worker.close()
        app.stop()
