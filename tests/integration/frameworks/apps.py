"""The same small app in each framework, for the contract every one of them must meet.

Each builder makes the three routes below in its own framework, and, given
bastion's operations app, mounts it at ``/api`` the framework's own way:

- ``GET /whoami``: ``{"client": request.client.host, "scheme": request.url.scheme}``
- ``POST /count``: increments a counter and returns it
- ``GET /framed``: sets its own ``X-Frame-Options: SAMEORIGIN``
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import litestar
from fastapi import FastAPI
from fastapi import Request as FastAPIRequest
from fastapi.responses import PlainTextResponse as FastAPIText
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["BUILDERS", "Built"]

#: The app, and how many POSTs reached its counter.
Built = tuple[ASGIApp, Callable[[], int]]


def starlette_app(operations: ASGIApp | None = None) -> Built:
    posts = [0]

    async def whoami(request: Request) -> JSONResponse:
        assert request.client is not None
        return JSONResponse({"client": request.client.host, "scheme": request.url.scheme})

    async def count(request: Request) -> JSONResponse:
        posts[0] += 1
        return JSONResponse({"count": posts[0]})

    async def framed(request: Request) -> PlainTextResponse:
        return PlainTextResponse("framed", headers={"X-Frame-Options": "SAMEORIGIN"})

    routes: list[Route | Mount] = [
        Route("/whoami", whoami, methods=["GET"]),
        Route("/count", count, methods=["POST"]),
        Route("/framed", framed, methods=["GET"]),
    ]
    if operations is not None:
        routes.append(Mount("/api", app=operations))
    return Starlette(routes=routes), lambda: posts[0]


def fastapi_app(operations: ASGIApp | None = None) -> Built:
    posts = [0]
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/whoami")
    async def whoami(request: FastAPIRequest) -> dict[str, Any]:
        assert request.client is not None
        return {"client": request.client.host, "scheme": request.url.scheme}

    @app.post("/count")
    async def count() -> dict[str, int]:
        posts[0] += 1
        return {"count": posts[0]}

    @app.get("/framed")
    async def framed() -> FastAPIText:
        return FastAPIText("framed", headers={"X-Frame-Options": "SAMEORIGIN"})

    if operations is not None:
        app.mount("/api", operations)
    return app, lambda: posts[0]


def litestar_app(operations: ASGIApp | None = None) -> Built:
    posts = [0]

    @litestar.get("/whoami")
    async def whoami(request: litestar.Request[Any, Any, Any]) -> dict[str, str]:
        assert request.client is not None
        return {"client": request.client.host, "scheme": request.url.scheme}

    @litestar.post("/count")
    async def count() -> dict[str, int]:
        posts[0] += 1
        return {"count": posts[0]}

    @litestar.get("/framed")
    async def framed() -> litestar.Response[str]:
        return litestar.Response("framed", headers={"X-Frame-Options": "SAMEORIGIN"})

    handlers: list[Any] = [whoami, count, framed]
    if operations is not None:
        mounted = operations

        @litestar.asgi("/api", is_mount=True, copy_scope=True)
        async def api(scope: Scope, receive: Receive, send: Send) -> None:
            await mounted(scope, receive, send)

        handlers.append(api)
    app = litestar.Litestar(route_handlers=handlers)
    # Litestar types its scope as TypedDicts; on the wire it is the same ASGI app.
    return cast(ASGIApp, app), lambda: posts[0]


BUILDERS: dict[str, Callable[[ASGIApp | None], Built]] = {
    "starlette": starlette_app,
    "fastapi": fastapi_app,
    "litestar": litestar_app,
}
