"""Build the example app from settings.

Starlette rather than FastAPI: bastion's middleware is pure ASGI, and the
smallest host shows that nothing here leans on a framework's extras. The
bench's "bare app" ceiling is this same Starlette app without the envelope.
"""

from __future__ import annotations

import logging
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, ExceptionHandler

from bastion import Bastion
from bastion.auth import auth_routes
from bastion.body import BadRequest
from bastion.config import Settings, get_settings
from bastion.ops import Metrics, configure_logging
from bastion.responses import NO_STORE
from bastion_example import (
    accounts,
    pages,
    sandbox_accounts,
    sandbox_cache,
    sandbox_hardening,
    sandbox_health,
    sandbox_jobs,
    sandbox_outbox,
    sandbox_signin,
)
from bastion_example.templating import templates

STATIC_DIR = Path(__file__).parent / "static"
logger = logging.getLogger("bastion.app")


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


async def _bad_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BadRequest)
    if _wants_json(request):
        return JSONResponse(exc.as_json(), status_code=exc.status_code)
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


async def _internal_error(request: Request, exc: Exception) -> Response:
    """A clean 500 with no detail. protect()'s failure rule logs it once, with the request id,
    and answers 503 instead when the database was out of reach (one rule, in the library)."""
    headers = dict(NO_STORE)
    if _wants_json(request):
        return JSONResponse({"error": "internal server error"}, status_code=500, headers=headers)
    return templates.TemplateResponse(
        request,
        "error.html",
        {"status": 500, "reason": "Something went wrong on our side."},
        status_code=500,
        headers=headers,
    )


async def _favicon(request: Request) -> Response:
    """Browsers ask for /favicon.ico whatever the page links; answer it from this origin
    (a 404 on every page view was noise in the log, and a CDN icon would break air-gapped)."""
    return FileResponse(
        STATIC_DIR / "favicon.ico",
        media_type="image/x-icon",
        headers={"Cache-Control": "public, max-age=86400"},
    )


class _StaticOnly:
    """Enough of a request for the page templates outside one: the static files' URLs."""

    def url_for(self, name: str, /, **params: str) -> str:
        return "/static/" + params["path"]


def _refusal_page(status: int, title: str, reason: str, detail: str, hint: str) -> bytes:
    """The envelope's refusals, as the app's own styled error page (for browsers)."""
    text = f"{title}: {detail} ({reason}). To fix it: {hint}."
    page = templates.get_template("error.html")
    return page.render(request=_StaticOnly(), status=status, reason=text).encode()


def create_app(settings: Settings | None = None) -> ASGIApp:
    """The example app for ``settings`` (the environment's when omitted), fully protected."""
    settings = settings or get_settings()
    configure_logging(json_lines=settings.is_production)
    routes = create_routes_app(settings)
    bastion: Bastion = routes.state.bastion
    # The operations endpoints are among the routes (the sandbox and the hostile-input
    # suite see them there), so protect() need not answer them itself.
    return bastion.protect(routes, operations=False, error_page=_refusal_page)


def create_routes_app(settings: Settings, metrics: Metrics | None = None) -> Starlette:
    """The bare app: routes, error pages and lifespan, without the envelope around it.

    Everything bastion runs comes from one :class:`~bastion.Bastion` (kept in
    ``app.state.bastion``); ``metrics`` replaces the one it would make.
    """
    bastion = Bastion(settings, metrics=metrics)
    auth = bastion.auth_service()

    handlers: dict[type[BaseException] | int, ExceptionHandler] = {
        BadRequest: _bad_request,
        HTTPException: _http_error,
        Exception: _internal_error,
    }

    app = Starlette(
        routes=[
            Route("/", pages.index, name="index"),
            Route("/favicon.ico", _favicon, name="favicon"),
            *bastion.operations_routes(),
            *auth_routes(auth, settings.SESSION_MAX_AGE),
            *accounts.routes,
            *sandbox_cache.routes,
            *sandbox_hardening.routes,
            *sandbox_jobs.routes,
            *sandbox_signin.routes,
            *sandbox_health.routes,
            *sandbox_accounts.routes,
            *sandbox_outbox.routes,
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        exception_handlers=handlers,
        lifespan=bastion.lifespan,
    )
    app.state.bastion = bastion
    app.state.settings = settings
    app.state.database = bastion.database
    app.state.auth = auth
    app.state.metrics = bastion.metrics
    return app
