"""A small app with bugs on purpose, inside ``protect()``, for the failure tests.

Served by uvicorn like the example app (``AppServer(factory=FACTORY)``), so
what the tests read is what a real server does with an exception: the
response the client gets, the lines in the log, the counts in the metrics.

Routes:

- ``GET /ok``: 200, the readiness probe.
- ``GET /boom`` and ``GET /api/boom``: raise inside a Starlette handler, with a
  message that must never reach a log (``SECRET``).
- ``GET /boom-after``: answers 200, then a background task raises.
- ``GET /raw-boom``: bare ASGI, in front of Starlette (so no framework catches
  anything), raises before it starts a response.
- ``POST /upload``: reads the whole body through ``bastion.body.read_body``.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bastion._stack import build_stack
from bastion.body import read_body
from bastion.config import get_settings
from bastion.ops import Metrics, configure_logging, metrics_routes

FACTORY = "tests.support.failing_app:create_app"
SECRET = "postgresql://app:hunter2-not-for-logs@db/prod"


def _fail() -> None:
    raise RuntimeError(f"could not connect to {SECRET}")


async def ok(request: Request) -> Response:
    return PlainTextResponse("ok")


async def boom(request: Request) -> Response:
    _fail()
    return PlainTextResponse("unreachable")


async def boom_after(request: Request) -> Response:
    return PlainTextResponse("sent", background=BackgroundTask(_fail))


async def upload(request: Request) -> Response:
    body = await read_body(request, 1024 * 1024)
    return JSONResponse({"bytes": len(body)})


async def raw_boom(scope: Scope, receive: Receive, send: Send) -> None:
    _fail()


def create_app() -> ASGIApp:
    settings = get_settings()
    configure_logging(json_lines=False)
    metrics = Metrics()
    app = Starlette(
        routes=[
            Route("/ok", ok),
            Route("/boom", boom),
            Route("/api/boom", boom),
            Route("/boom-after", boom_after),
            Route("/upload", upload, methods=["POST"]),
            *metrics_routes(metrics),
        ]
    )

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/raw-boom":
            await raw_boom(scope, receive, send)
        else:
            await app(scope, receive, send)

    return build_stack(dispatch, settings, metrics=metrics)
