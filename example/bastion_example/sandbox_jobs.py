"""/sandbox/jobs and /api/sandbox/jobs: defer a demo job and watch it run, retry, fail.

The demo job is declared once and runs wherever the settings say: a
``bastion worker`` with ``JOBS_ENABLED=true``, the app's own loop otherwise.
It fails its first ``fail_times`` attempts (or every one, with
``always_fail``), takes ``seconds`` per run, and gets three retries with an
exponential backoff of 2, 4 and 8 seconds. ``SANDBOX_DEMO_BACKOFF`` sets the
base of that backoff (waits of b, b² and b³ seconds): the tests set 1, to watch
a job fail for good in 3 s rather than 14; it is read where the task is
declared, so the app and its workers must see the same value. The JSON API
is a contract the fault tests rely on::

    POST /api/sandbox/jobs  {"fail_times": 0, "always_fail": false, "seconds": 0}
      -> {"id": 17}
    GET  /api/sandbox/jobs/17
      -> {"id": 17, "status": "running", "attempts": 1, "completed_runs": 0}

``completed_runs`` counts runs that reached the end of the job body (from
``bastion_job_run``), so a worker killed mid-run shows as a second attempt with
one completed run, not two.
"""

from __future__ import annotations

import asyncio
import math
import os
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from bastion.body import BadRequest, read_form, read_json
from bastion.jobs import JobContext, Jobs, task
from bastion.responses import NO_STORE
from bastion_example.guards import guard_sandbox
from bastion_example.templating import templates

__all__ = ["DEMO_BACKOFF", "DEMO_RETRIES", "demo", "routes"]

DEMO_RETRIES = 3
MAX_SECONDS = 60.0
MAX_FAIL_TIMES = 10


def _backoff() -> int:
    """``SANDBOX_DEMO_BACKOFF``, 2 when unset; anything but 1 to 10 stops the import, naming it."""
    raw = os.environ.get("SANDBOX_DEMO_BACKOFF", "2")
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 10):
        raise ValueError(
            f"SANDBOX_DEMO_BACKOFF must be a whole number of seconds from 1 to 10, not {raw!r}"
        )
    return int(raw)


DEMO_BACKOFF = _backoff()


class DemoFailure(RuntimeError):
    """The failure the demo job was asked for."""


@task("sandbox.demo", queue="sandbox", retries=DEMO_RETRIES, backoff=DEMO_BACKOFF)
async def demo(
    ctx: JobContext, fail_times: int = 0, always_fail: bool = False, seconds: float = 0.0
) -> None:
    if seconds:
        await asyncio.sleep(seconds)
    if always_fail or ctx.attempt <= fail_times:
        raise DemoFailure(f"attempt {ctx.attempt} failed as asked")


def _options(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest('body must be {"fail_times": 0, "always_fail": false, "seconds": 0}', 422)
    fail_times = body.get("fail_times", 0)
    always_fail = body.get("always_fail", False)
    seconds = body.get("seconds", 0)
    if (
        not isinstance(fail_times, int)
        or isinstance(fail_times, bool)
        or not 0 <= fail_times <= MAX_FAIL_TIMES
    ):
        raise BadRequest(f"fail_times must be a whole number from 0 to {MAX_FAIL_TIMES}", 422)
    if not isinstance(always_fail, bool):
        raise BadRequest("always_fail must be true or false", 422)
    if (
        not isinstance(seconds, int | float)
        or isinstance(seconds, bool)
        or not math.isfinite(seconds)
        or not 0 <= seconds <= MAX_SECONDS
    ):
        raise BadRequest(f"seconds must be a number from 0 to {MAX_SECONDS:.0f}", 422)
    return {"fail_times": fail_times, "always_fail": always_fail, "seconds": float(seconds)}


def _jobs(request: Request) -> Jobs:
    jobs: Jobs = request.app.state.bastion.jobs
    return jobs


async def job_state(jobs: Jobs, job_id: int) -> dict[str, object] | None:
    info = await jobs.info(job_id)
    if info is None:
        return None
    return {
        "id": info.id,
        "status": info.status,
        "attempts": info.attempts,
        "completed_runs": await jobs.completed_runs(job_id),
    }


async def api_defer(request: Request) -> Response:
    await guard_sandbox(request)
    options = _options(await read_json(request, 1024))
    job_id = await demo.defer(**options)
    return JSONResponse({"id": job_id}, status_code=201, headers=NO_STORE)


async def api_job(request: Request) -> Response:
    await guard_sandbox(request)
    raw = request.path_params["id"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        raise BadRequest("job ids are whole numbers", 404)
    state = await job_state(_jobs(request), int(raw))
    if state is None:
        return JSONResponse({"error": "no such job"}, status_code=404, headers=NO_STORE)
    return JSONResponse(state, headers=NO_STORE)


async def page(request: Request) -> Response:
    await guard_sandbox(request)
    jobs = _jobs(request)
    job: dict[str, object] | None = None
    raw = request.query_params.get("job", "")
    if raw.isascii() and raw.isdigit() and len(raw) <= 19:
        job = await job_state(jobs, int(raw))
    context = {
        "enabled": jobs.enabled,
        "job": job,
        "workers": await jobs.workers(),
        "runs": await jobs.recent_runs(15),
        "retries": DEMO_RETRIES,
        "cleanup_every": request.app.state.settings.JOBS_SESSION_CLEANUP_SECONDS,
    }
    return templates.TemplateResponse(request, "sandbox_jobs.html", context, headers=NO_STORE)


async def submit(request: Request) -> Response:
    """Without JavaScript too: the form defers, then the page shows the job (post/redirect/get)."""
    await guard_sandbox(request)
    form = await read_form(request)
    kind = form.get("kind", "succeed")
    if kind not in ("succeed", "flaky", "fail"):
        raise BadRequest("kind must be succeed, flaky or fail")
    digits = form.get("seconds", "0").strip()
    seconds = float(digits) if digits.replace(".", "", 1).isdigit() and len(digits) < 8 else -1.0
    options = _options(
        {
            "fail_times": 2 if kind == "flaky" else 0,
            "always_fail": kind == "fail",
            "seconds": seconds,
        }
    )
    job_id = await demo.defer(**options)
    return RedirectResponse(f"/sandbox/jobs?job={job_id}", status_code=303)


async def page_or_submit(request: Request) -> Response:
    """POST defers; GET and HEAD only show (HEAD must never submit: it skips the CSRF check)."""
    if request.method == "POST":
        return await submit(request)
    return await page(request)


routes = [
    Route("/sandbox/jobs", page_or_submit, methods=["GET", "POST"], name="sandbox_jobs"),
    Route("/api/sandbox/jobs", api_defer, methods=["POST"]),
    Route("/api/sandbox/jobs/{id}", api_job, methods=["GET"]),
]
