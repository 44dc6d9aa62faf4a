"""GET /api/health (the watchman counterpart) and GET /api/health/live.

``/api/health`` pings the database under a hard deadline, so a hung database
gives a 503 in bounded time instead of hanging the probe (django-watchman's
checks have no timeout). It reports feature flags, never data, and never a
stack trace. Unauthenticated by design: load balancers, Caddy and uptime
probes call it, and the envelope exempts it from the Host check.

Its ``"schema"`` says where bastion's tables stand (``current``, ``behind``,
``missing``; ``unknown`` for a revision a newer bastion wrote), read by the
same one query that proves the database answers. It does not change the
status code, which follows the database alone: a probe that took an
unmigrated app out of rotation would hide the log line that says what to do.

``/api/health/live`` touches no dependency: it says the process can serve,
which is what a liveness probe should restart on. Readiness is the other one.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.db import Database
from bastion.ops._metrics import Metrics
from bastion.responses import NO_STORE


def health_routes(
    database: Database,
    *,
    cache_enabled: Callable[[], bool],
    metrics_enabled: bool,
    jobs_enabled: Callable[[], bool | Awaitable[bool]] = lambda: False,
    metrics: Metrics | None = None,
) -> list[Route]:
    async def health(request: Request) -> Response:
        schema = await database.schema()
        if schema is None:
            if metrics is not None:
                metrics.health_checks.labels("degraded").inc()
            return JSONResponse(
                {"status": "degraded", "database": False}, status_code=503, headers=NO_STORE
            )
        if metrics is not None:
            metrics.health_checks.labels("ok").inc()
        jobs = jobs_enabled()  # the jobs engine's own database check, under its own deadline
        if inspect.isawaitable(jobs):
            jobs = await jobs
        body = {
            "status": "ok",
            "database": True,
            "schema": schema,
            "jobs": bool(jobs),
            "cache": cache_enabled(),
            "metrics": metrics_enabled,
        }
        return JSONResponse(body, headers=NO_STORE)

    async def live(request: Request) -> Response:
        return JSONResponse({"status": "ok"}, headers=NO_STORE)

    return [
        Route("/api/health", health, methods=["GET"]),
        Route("/api/health/live", live, methods=["GET"]),
    ]
