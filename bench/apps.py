"""The plain contenders of ``python -m bench``, as ASGI factories (uvicorn and granian call them).

Each answers ``GET /json`` and a same-origin ``POST /submit`` (body drained) with
``{"ok": true}``; they differ only in what stands in front of the route. Only
bastion's public calls are imported at the top, the rest in the factory that
needs it, since a before/after run serves ``protected_app`` on another
revision's bastion. The URL comes from ``BENCH_APP_URL``: a server calls a
factory without arguments, and the protections must know their own origin.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any, cast
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion import Settings, load_settings
from bastion.ops import Metrics

APP_URL_VARIABLE = "BENCH_APP_URL"
VALKEY_URL_VARIABLE = "BENCH_VALKEY_URL"
#: The key ``GET /cached`` reads (bastion's prefix is added by the cache itself).
CACHED_KEY = "bench:item"
#: A fixed secret: the benchmark has nothing to protect, and a fixed value keeps runs alike.
BENCH_SECRET = "bench-secret-key-not-for-production-0123456789abcdef"


def _stack_builder() -> Callable[..., ASGIApp]:
    """The stack builder of the bastion on the path: private now, public in an older one.

    ``--before`` runs this code against an older revision's ``src/``, where it
    was ``bastion.protect``.
    """
    try:
        from bastion._stack import build_stack
    except ImportError:
        from bastion import protect  # type: ignore[attr-defined]

        return protect  # type: ignore[no-any-return]
    return build_stack


#: ``protect(app, settings, metrics=...)``: the per-request stack of the bastion on the path.
protect = _stack_builder()


def app_url() -> str:
    """Fail at start-up, not on the first request, when the harness forgot the URL."""
    value = os.environ.get(APP_URL_VARIABLE, "").strip()
    if not value:
        raise RuntimeError(f"{APP_URL_VARIABLE} must be set, e.g. http://127.0.0.1:8001")
    return value


def app_host() -> str:
    return urlsplit(app_url()).hostname or "127.0.0.1"


def bench_settings(**overrides: Any) -> Settings:
    """bastion as a production deployment configures it: one allowed host (the same one Django
    and Litestar are given), its own origin."""
    return load_settings(
        APP_ENV="production",
        SECRET_KEY=BENCH_SECRET,
        APP_URL=app_url(),
        ALLOWED_HOSTS=app_host(),
        **overrides,
    )


async def _json(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def _submit(request: Request) -> JSONResponse:
    # Drain the body as any real form or JSON handler would, so that the POST
    # measures a complete unsafe request rather than one the app ignores.
    await request.body()
    return JSONResponse({"ok": True})


def _routes() -> list[Route]:
    return [
        Route("/json", _json, methods=["GET"]),
        Route("/submit", _submit, methods=["POST"]),
    ]


def bare_app() -> Starlette:
    """The ceiling: Starlette with nothing in front (``BENCH_APP_URL`` checked all the same)."""
    app_url()
    return Starlette(routes=_routes())


def headers_app() -> ASGIApp:
    """The bare app sending the envelope's eight response headers, and doing nothing else.

    It separates what *sending* those headers costs the server (uvicorn checks
    and serialises each in Python) from what bastion's per-request logic costs.
    """
    from bastion.hardening import DEFAULT_SECURITY_HEADERS

    inner = bare_app()
    fixed = [
        *((name.encode(), value.encode()) for name, value in DEFAULT_SECURITY_HEADERS.items()),
        (b"x-request-id", b"0" * 32),
    ]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *fixed]}
            await send(message)

        await inner(scope, receive, send_with_headers)

    return app


def protected_app() -> ASGIApp:
    """The same app behind the whole per-request stack, as the brief's deployment wraps it."""
    return protect(bare_app(), bench_settings(), metrics=Metrics())


def protected_nometrics_app() -> ASGIApp:
    """The same stack without metrics (``protect(app, settings)``): what the metrics cost."""
    return protect(bare_app(), bench_settings())


def protected_logging_app() -> ASGIApp:
    """The full stack with production's logging: one JSON access line per request to stderr."""
    from bastion.ops import configure_logging

    settings = bench_settings()
    configure_logging(json_lines=settings.is_production)
    return protect(bare_app(), settings, metrics=Metrics())


def fastapi_app() -> ASGIApp:
    """The same two routes written the FastAPI way, behind the same stack."""
    from fastapi import FastAPI

    api = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @api.get("/json")
    async def json_route() -> dict[str, bool]:
        return {"ok": True}

    @api.post("/submit")
    async def submit(request: Request) -> dict[str, bool]:
        await request.body()
        return {"ok": True}

    return protect(api, bench_settings(), metrics=Metrics())


def litestar_app() -> ASGIApp:
    """Litestar with its own protections matched to bastion's (see RESULTS.md, *What each
    contender does*): CSRF token, allowed hosts, bastion's security headers, and a rate
    limit installed with the two plain paths excluded (the skip is what is measured).
    """
    from litestar import Litestar, get, post
    from litestar.config.allowed_hosts import AllowedHostsConfig
    from litestar.config.csrf import CSRFConfig
    from litestar.datastructures import ResponseHeader
    from litestar.middleware.rate_limit import RateLimitConfig

    from bastion.hardening import DEFAULT_SECURITY_HEADERS

    @get("/json")
    async def json_route() -> dict[str, bool]:
        return {"ok": True}

    @post("/submit", status_code=200)
    async def submit(body: bytes) -> dict[str, bool]:
        return {"ok": True}

    rate_limit = RateLimitConfig(rate_limit=("minute", 10_000), exclude=["/json", "/submit"])
    app = Litestar(
        route_handlers=[json_route, submit],
        csrf_config=CSRFConfig(secret=BENCH_SECRET),
        # Litestar matches the Host header with its port, so the port is part of the name.
        allowed_hosts=AllowedHostsConfig(allowed_hosts=[urlsplit(app_url()).netloc]),
        response_headers=[
            ResponseHeader(name=name, value=value)
            for name, value in DEFAULT_SECURITY_HEADERS.items()
        ],
        middleware=[rate_limit.middleware],
        openapi_config=None,
    )
    # Litestar types its scope as TypedDicts; on the wire it is the same ASGI app.
    return cast(ASGIApp, app)


def django_app() -> ASGIApp:
    """Django on ASGI with its security middleware; see ``bench.django_settings``."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.django_settings"
    from django.core.asgi import get_asgi_application

    return cast(ASGIApp, get_asgi_application())


def cached_app() -> ASGIApp:
    """``GET /cached`` (a ``cache_get``, 200 hit or miss) behind the stack, on ``BENCH_VALKEY_URL``
    (empty: no cache), with bastion's cache defaults; ``GET /stats`` counts its cache events."""
    from bastion.cache import Cache, cache_get, set_cache

    if VALKEY_URL_VARIABLE not in os.environ:
        raise RuntimeError(f"{VALKEY_URL_VARIABLE} must be set (empty: no cache at all)")
    valkey_url = os.environ[VALKEY_URL_VARIABLE].strip()
    settings = bench_settings(VALKEY_URL=valkey_url or None)
    metrics = Metrics()
    events: Counter[str] = Counter()

    def on_cache(event: str) -> None:
        events[event] += 1
        metrics.on_cache(event)

    cache = Cache.from_settings(settings, on_cache)
    if cache.connection is not None:
        breaker = cache.connection.breaker
        breaker.listeners.append(metrics.on_breaker("valkey"))
        breaker.listeners.append(lambda state: events.update([f"breaker_{state.name.lower()}"]))
    set_cache(cache)

    async def cached(request: Request) -> JSONResponse:
        value = await cache_get(CACHED_KEY)
        return JSONResponse({"hit": value is not None})

    async def stats(request: Request) -> JSONResponse:
        """Cache hits, misses, errors and breaker transitions so far, for the report."""
        return JSONResponse(dict(events))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await cache.aclose()

    routes = [
        *_routes(),
        Route("/cached", cached, methods=["GET"]),
        Route("/stats", stats, methods=["GET"]),
    ]
    return protect(Starlette(routes=routes, lifespan=lifespan), settings, metrics=metrics)
