"""Helpers shared by the jobs tests: the sandbox's JSON API, polled with a bound.

The demo task's backoff base is set to 1 s (``SANDBOX_DEMO_BACKOFF``) for the
apps and workers these tests start: a job that always fails runs four times
in 3 s of waits instead of 14. The tests still wait the whole schedule and
check it as a lower bound; its exponential shape is pinned in
``tests/unit/test_job_retries.py``.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.waiting import wait_for

__all__ = ["BACKOFF", "RETRY_WAITS", "defer", "poll", "wait_for"]

#: ``SANDBOX_DEMO_BACKOFF`` for the processes these tests start.
BACKOFF = "1"
#: The waits before the demo task's three retries, as the task's rule computes them.
RETRY_WAITS = [float(int(BACKOFF) ** attempt) for attempt in (1, 2, 3)]


def defer(base: str, **options: Any) -> int:
    response = httpx.post(
        f"{base}/api/sandbox/jobs", json=options, headers={"Origin": base}, timeout=10
    )
    assert response.status_code == 201, response.text
    job_id: int = response.json()["id"]
    return job_id


def poll(base: str, job_id: int) -> dict[str, Any]:
    response = httpx.get(f"{base}/api/sandbox/jobs/{job_id}", timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
