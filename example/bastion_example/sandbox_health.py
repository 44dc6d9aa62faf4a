"""/sandbox/health: what /api/health and /api/health/live answer right now, and why.

The answers are the real endpoints' own (fetched through the app, so they
are exactly what a load balancer sees); the page adds what each field means.
"""

from __future__ import annotations

import json

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion import Bastion
from bastion_example.guards import guard_sandbox
from bastion_example.templating import templates


async def _ask(request: Request, path: str) -> tuple[int, str]:
    """Call the app's own endpoint in-process, as a probe would over HTTP."""
    app = request.app
    host = request.headers.get("host", "localhost")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as client:
        response = await client.get(path)
    return response.status_code, json.dumps(response.json(), indent=2)


async def page(request: Request) -> Response:
    await guard_sandbox(request)
    bastion: Bastion = request.app.state.bastion
    health = await _ask(request, "/api/health")
    live = await _ask(request, "/api/health/live")
    context = {
        "health": health,
        "live": live,
        "timeout_ms": bastion.settings.DATABASE_TIMEOUT_MS,
        "cache": bastion.cache.enabled,
        "metrics": bastion.metrics is not None,
    }
    return templates.TemplateResponse(request, "sandbox_health.html", context)


routes = [Route("/sandbox/health", page, methods=["GET"], name="sandbox_health")]
