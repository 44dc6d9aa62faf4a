"""The example app as the sign-in flood serves it: its own routes plus one bare POST.

A refused sign-in is cheap or dear only relative to something: the fairest
yardstick is the cheapest unsafe request the same process answers through the
same server, ``protect()`` stack and access log, ``POST /bench/post`` (drains
its body, answers ``{"ok": true}``). Everything else is ``create_app``'s own.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp

from bastion import Bastion
from bastion.config import get_settings
from bastion_example.app import create_routes_app

BARE_POST_PATH = "/bench/post"


async def bare_post(request: Request) -> JSONResponse:
    """Drain the body as any handler of a JSON POST must, then answer the smallest JSON."""
    await request.body()
    return JSONResponse({"ok": True})


def example_with_bare_post() -> ASGIApp:
    """``bastion_example:create_app`` with :data:`BARE_POST_PATH` among its routes."""
    routes = create_routes_app(get_settings())
    routes.add_route(BARE_POST_PATH, bare_post, methods=["POST"])
    bastion: Bastion = routes.state.bastion
    # As create_app: the operations endpoints are among the routes already.
    return bastion.protect(routes, operations=False)
