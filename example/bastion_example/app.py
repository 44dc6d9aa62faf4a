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
from bastion.ops import (
    LoopLagMonitor,
    Metrics,
    configure_logging,
    health_routes,
    metrics_routes,
)
from bastion.ratelimit import SignInLimiter
from bastion.stack import protect
from bastion_example import accounts, pages, sandbox_cache, sandbox_hardening
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
    """A dependency fault, not a bug: 503, one log line, a metric, no stack trace."""
    logger.warning("database unavailable path=%r error=%s", request.url.path, type(exc).__name__)
    metrics: Metrics | None = request.app.state.metrics
    if metrics is not None:
        metrics.database_errors.inc()
    headers = {"Retry-After": "5", "Cache-Control": "no-store"}
    if _wants_json(request):
        return JSONResponse({"error": "database unavailable"}, status_code=503, headers=headers)
    return templates.TemplateResponse(
        request, "unavailable.html", {}, status_code=503, headers=headers
    )


async def _internal_error(request: Request, exc: Exception) -> Response:
    """A bug: a clean 500 with no detail. protect()'s guard logs it once, with the request id."""
    headers = {"Cache-Control": "no-store"}
    if _wants_json(request):
        return JSONResponse({"error": "internal server error"}, status_code=500, headers=headers)
    return templates.TemplateResponse(
        request,
        "error.html",
        {"status": 500, "reason": "Something went wrong on our side."},
        status_code=500,
        headers=headers,
    )


def create_app(settings: Settings | None = None) -> ASGIApp:
    """The example app for ``settings`` (the environment's when omitted), fully protected."""
    settings = settings or get_settings()
    configure_logging(json_lines=settings.is_production)
    metrics = Metrics() if settings.METRICS_ENABLED else None
    return protect(create_routes_app(settings, metrics), settings, metrics=metrics)


def create_routes_app(settings: Settings, metrics: Metrics | None = None) -> Starlette:
    """The bare app: routes, error pages and lifespan, without the envelope around it.

    With ``metrics``, every block reports its decisions through its hook.
    """
    cache = Cache.from_settings(settings, metrics.on_cache if metrics else None)
    set_cache(cache)
    database = Database(settings.DATABASE_URL, timeout=settings.DATABASE_TIMEOUT_MS / 1000)
    limiter = SignInLimiter.from_settings(
        settings, on_event=metrics.on_rate_limit if metrics else None
    )
    auth = AuthService.from_settings(
        settings, database, limiter, on_failure=metrics.on_sign_in_failure if metrics else None
    )
    if metrics is not None:
        if cache.connection is not None:
            cache.connection.breaker.listeners.append(metrics.on_breaker("valkey"))
        limiter.breaker.listeners.append(metrics.on_breaker("ratelimit"))

    loop_lag = LoopLagMonitor(metrics.on_loop_lag if metrics else None)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        loop_lag.start()
        yield
        await loop_lag.stop()
        await auth.aclose()
        await limiter.aclose()
        await database.dispose()
        await close_cache()

    handlers: dict[type[BaseException] | int, ExceptionHandler] = {
        BadRequest: _bad_request,
        HTTPException: _http_error,
        Exception: _internal_error,
    }
    for error in DATABASE_ERRORS:
        handlers[error] = _database_unavailable

    app = Starlette(
        routes=[
            Route("/", pages.index, name="index"),
            *health_routes(
                database,
                cache_enabled=lambda: cache.enabled,
                metrics_enabled=metrics is not None,
                metrics=metrics,
            ),
            *metrics_routes(metrics),
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
    app.state.metrics = metrics
    app.state.loop_lag = loop_lag
    return app
