"""The two contenders of ``bench.envelope_overhead``, as uvicorn factories.

Both are built from one route table so that the only difference between them
is the envelope. The URL comes from ``BENCH_APP_URL`` because uvicorn calls a
factory without arguments, and the envelope must know its own origin (its
port is picked at run time) to let the benchmark's same-origin POST through.

    BENCH_APP_URL=http://127.0.0.1:8001 uvicorn --factory bench.apps:envelope_app
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from bastion.config import load_settings
from bastion.hardening import envelope

__all__ = ["APP_URL_VARIABLE", "bare_app", "envelope_app"]

APP_URL_VARIABLE = "BENCH_APP_URL"


def _app_url() -> str:
    """Fail at start-up, not on the first request, when the harness forgot the URL."""
    value = os.environ.get(APP_URL_VARIABLE, "").strip()
    if not value:
        raise RuntimeError(f"{APP_URL_VARIABLE} must be set, e.g. http://127.0.0.1:8001")
    return value


async def _json(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def _submit(request: Request) -> JSONResponse:
    # Drain the body as any real form or JSON handler would, so that the POST
    # measures a complete unsafe request rather than one the app ignores.
    await request.body()
    return JSONResponse({"ok": True})


def bare_app() -> Starlette:
    """The ceiling: Starlette with nothing in front of it.

    It checks ``BENCH_APP_URL`` too, although it has no use for it, so that
    both contenders are started by the harness in exactly the same way.
    """
    _app_url()
    return Starlette(
        routes=[
            Route("/json", _json, methods=["GET"]),
            Route("/submit", _submit, methods=["POST"]),
        ]
    )


def envelope_app() -> ASGIApp:
    """The same app behind the full hardening chain, configured as a deployment would be."""
    settings = load_settings(APP_URL=_app_url())
    return envelope(bare_app(), settings)
