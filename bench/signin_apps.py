"""The sign-in scenario: what counting attempts in Valkey costs, limiter by limiter.

Each contender is the smallest app that can host its limiter, answering
``POST /sign-in`` with a JSON body ``{"email": ..., "password": ...}``. The
handler parses the body and answers ``{"ok": true}``; no password is checked,
because only the counting is measured. Two baselines without any limiter
(Starlette, Litestar) give each limiter the framework cost to subtract.

The limit (``BENCH_RATE_LIMIT``, default 10000 per minute, the largest bastion
accepts) is the same for all and far above what any identity reaches: the
harness spreads the attempts over 4096 client IPs (``X-Forwarded-For``, which
uvicorn believes from loopback) and 4096 accounts, so every attempt is counted
and none refused. What each limiter counts is said in section 2 of RESULTS.md.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
from typing import Any, cast

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from bastion.cache import ValkeyOptions
from bastion.ratelimit import SignInLimiter, rate_limit_headers
from bench.apps import VALKEY_URL_VARIABLE

RATE_LIMIT_VARIABLE = "BENCH_RATE_LIMIT"
#: The limiter's deadline for one decision, in ms (bastion's default: 50).
DEADLINE_VARIABLE = "BENCH_DEADLINE_MS"
BASTION_PREFIX = "bench-bastion:rl"
SLOWAPI_PREFIX = "bench-slowapi"
LITESTAR_NAMESPACE = "bench-litestar"


def _valkey_url() -> str:
    value = os.environ.get(VALKEY_URL_VARIABLE, "").strip()
    if not value:
        raise RuntimeError(f"{VALKEY_URL_VARIABLE} must be set for the sign-in apps")
    return value


def _limit() -> str:
    return os.environ.get(RATE_LIMIT_VARIABLE, "10000/minute")


def _limit_per_minute() -> int:
    """The same limit in Litestar's spelling; the harness only ever sets N/minute."""
    amount, _, unit = _limit().partition("/")
    if unit != "minute":
        raise RuntimeError(f"{RATE_LIMIT_VARIABLE} must be N/minute, got {_limit()!r}")
    return int(amount)


async def _account(request: Request) -> str:
    """The email from the JSON body: every contender parses the same body the same way."""
    body: dict[str, Any] = json.loads(await request.body())
    return str(body["email"])


async def _json(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


def starlette_unlimited_app() -> Starlette:
    """The baseline for bastion and slowapi: the same endpoint, nothing counted."""

    async def sign_in(request: Request) -> JSONResponse:
        await _account(request)
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/json", _json), Route("/sign-in", sign_in, methods=["POST"])])


def bastion_signin_app() -> Starlette:
    """bastion's limiter as the sign-in service uses it; ``BENCH_DEADLINE_MS`` (default 50) is its
    deadline, and ``GET /stats`` says how many decisions the local fallback took."""
    deadline = int(os.environ.get(DEADLINE_VARIABLE, "50")) / 1000
    options = ValkeyOptions(url=_valkey_url(), command_timeout=deadline)
    limiter = SignInLimiter(_limit(), _limit(), valkey=options, key_prefix=BASTION_PREFIX)
    counts = {"decisions": 0, "fallbacks": 0}

    async def sign_in(request: Request) -> Response:
        account = await _account(request)
        client = request.client.host if request.client else "unknown"
        decision = await limiter.hit(client, account)
        counts["decisions"] += 1
        counts["fallbacks"] += decision.degraded
        headers = rate_limit_headers(decision)
        if not decision.allowed:
            return JSONResponse({"error": "rate limited"}, status_code=429, headers=headers)
        return JSONResponse({"ok": True}, headers=headers)

    async def stats(request: Request) -> JSONResponse:
        return JSONResponse(counts)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await limiter.aclose()

    return Starlette(
        routes=[
            Route("/json", _json),
            Route("/stats", stats),
            Route("/sign-in", sign_in, methods=["POST"]),
        ],
        lifespan=lifespan,
    )


def slowapi_signin_app() -> Starlette:
    """slowapi's documented Starlette set-up, on the same Valkey, same limit, same algorithm."""
    from slowapi import Limiter, _rate_limit_exceeded_handler
    from slowapi.errors import RateLimitExceeded
    from slowapi.util import get_remote_address

    host_port = _valkey_url().partition("://")[2]
    limiter = Limiter(
        key_func=get_remote_address,
        storage_uri=f"valkey://{host_port}",
        strategy="moving-window",
        key_prefix=SLOWAPI_PREFIX,
    )

    @limiter.limit(_limit())
    async def sign_in(request: Request) -> JSONResponse:
        await _account(request)
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/json", _json), Route("/sign-in", sign_in, methods=["POST"])])
    app.state.limiter = limiter
    # slowapi's handler is typed for its own exception, Starlette's slot for any.
    app.add_exception_handler(RateLimitExceeded, cast(Any, _rate_limit_exceeded_handler))
    return app


def _litestar(limited: bool) -> ASGIApp:
    from litestar import Litestar, get, post
    from litestar.middleware.base import DefineMiddleware
    from litestar.middleware.rate_limit import RateLimitConfig
    from litestar.stores.valkey import ValkeyStore

    @get("/json")
    async def json_route() -> dict[str, bool]:
        return {"ok": True}

    @post("/sign-in", status_code=200)
    async def sign_in(data: dict[str, Any]) -> dict[str, bool]:
        str(data["email"])
        return {"ok": True}

    middleware: list[DefineMiddleware] = []
    stores: dict[str, Any] = {}
    if limited:
        config = RateLimitConfig(rate_limit=("minute", _limit_per_minute()), exclude=["/json"])
        middleware.append(config.middleware)
        stores["rate_limit"] = ValkeyStore.with_client(
            url=_valkey_url(), namespace=LITESTAR_NAMESPACE
        )
    app = Litestar(
        route_handlers=[json_route, sign_in],
        middleware=middleware,
        stores=stores,
        openapi_config=None,
    )
    return cast(ASGIApp, app)


def litestar_signin_app() -> ASGIApp:
    """Litestar's own rate limit, on its Valkey store."""
    return _litestar(limited=True)


def litestar_unlimited_app() -> ASGIApp:
    """The baseline for Litestar's limiter: the same Litestar app without it."""
    return _litestar(limited=False)
