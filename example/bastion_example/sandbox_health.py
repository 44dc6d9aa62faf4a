"""/sandbox/health: what /api/health and /api/health/live answer right now, and why.

The answers are the real endpoints' own (fetched through the app, so they
are exactly what a load balancer sees); the page adds what each field means.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion import Bastion
from bastion_example.guards import guard_sandbox
from bastion_example.templating import templates


async def _ask(request: Request, path: str) -> tuple[int, str]:
    """Call the app's own endpoint in-process, as a probe would over HTTP.

    A bare ASGI call rather than an HTTP client: the page needs nothing an
    installed app does not already have.
    """
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": request.url.scheme,
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", request.headers.get("host", "localhost").encode())],
        "client": request.scope.get("client"),
        "server": request.scope.get("server"),
        "state": dict(request.scope.get("state") or {}),
    }
    status = 500
    body = bytearray()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))

    await request.app(scope, receive, send)
    return status, json.dumps(json.loads(body), indent=2)


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
