"""Build the example app from settings.

Starlette rather than FastAPI: bastion's middleware is pure ASGI, and the
smallest host shows that nothing here leans on a framework's extras. The
bench's "bare app" ceiling is this same Starlette app without the envelope.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, ExceptionHandler

from bastion.auth import AuthService, auth_routes
from bastion.body import BadRequest
from bastion.cache import Cache, close_cache, set_cache
from bastion.config import Settings, get_settings
from bastion.db import DATABASE_ERRORS, Database
from bastion.hardening import envelope
from bastion.ratelimit import SignInLimiter
from bastion_example import accounts, health, pages, sandbox_cache, sandbox_hardening
from bastion_example.templating import templates

STATIC_DIR = Path(__file__).parent / "static"
logger = logging.getLogger("bastion.app")


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


async def _bad_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BadRequest)
    if _wants_json(request):
        return JSONResponse({"error": exc.reason}, status_code=exc.status_code)
    return Response(exc.reason + "\n", status_code=exc.status_code, media_type="text/plain")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    reason = exc.detail or "error"
    if _wants_json(request):
        return JSONResponse({"error": reason}, status_code=exc.status_code, headers=exc.headers)
    return templates.TemplateResponse(
        request,
        "error.html",
        {"status": exc.status_code, "reason": reason},
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    """A dependency fault, not a bug: 503, one log line, no stack trace for the client."""
    logger.warning("database unavailable path=%r error=%s", request.url.path, type(exc).__name__)
    headers = {"Retry-After": "5", "Cache-Control": "no-store"}
    if _wants_json(request):
        return JSONResponse({"error": "database unavailable"}, status_code=503, headers=headers)
    return templates.TemplateResponse(
        request, "unavailable.html", {}, status_code=503, headers=headers
    )


def create_app(settings: Settings | None = None) -> ASGIApp:
    """The example app for ``settings`` (the environment's when omitted), behind the envelope."""
    settings = settings or get_settings()
    return envelope(create_routes_app(settings), settings)


def create_routes_app(settings: Settings) -> Starlette:
    """The bare app: routes, error pages and lifespan, without the envelope around it."""
    cache = Cache.from_settings(settings)
    set_cache(cache)
    database = Database(settings.DATABASE_URL, timeout=settings.DATABASE_TIMEOUT_MS / 1000)
    limiter = SignInLimiter.from_settings(settings)
    auth = AuthService.from_settings(settings, database, limiter)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await limiter.aclose()
        await database.dispose()
        await close_cache()

    handlers: dict[type[BaseException] | int, ExceptionHandler] = {
        BadRequest: _bad_request,
        HTTPException: _http_error,
    }
    for error in DATABASE_ERRORS:
        handlers[error] = _database_unavailable

    app = Starlette(
        routes=[
            Route("/", pages.index, name="index"),
            *health.routes,
            *auth_routes(auth, settings.SESSION_MAX_AGE),
            *accounts.routes,
            *sandbox_cache.routes,
            *sandbox_hardening.routes,
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        exception_handlers=handlers,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.auth = auth
    return app
