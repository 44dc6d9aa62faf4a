"""The example app as the "sign-in flood" scenario serves it: its own routes plus one bare POST.

A refused sign-in is only cheap or dear *relative to something*; the fairest
yardstick is the cheapest unsafe request the same process can answer, through
the same server, the same ``protect()`` stack (request observer, metrics,
trusted proxies, hosts, CSRF, security headers) and the same access log. So
this factory is ``bastion_example:create_app`` line for line, with one route
added to the example's routes before the stack is wrapped around them::

    POST /bench/post  -> drains the body -> {"ok": true}

Everything else (settings from the environment, ``METRICS_ENABLED``, the
:class:`~bastion.Bastion` that owns the limiter, sign-in guard, audit tallies
and metrics, logging) is the example app's own.

    APP_URL=http://127.0.0.1:8001 METRICS_ENABLED=true \\
        uvicorn --factory bench.example_apps:example_with_bare_post
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp

from bastion import Bastion
from bastion.config import get_settings
from bastion.ops import configure_logging
from bastion_example.app import create_routes_app

__all__ = ["BARE_POST_PATH", "example_with_bare_post"]

BARE_POST_PATH = "/bench/post"


async def bare_post(request: Request) -> JSONResponse:
    """Drain the body as any handler of a JSON POST must, then answer the smallest JSON."""
    await request.body()
    return JSONResponse({"ok": True})


def example_with_bare_post() -> ASGIApp:
    """``bastion_example:create_app`` with :data:`BARE_POST_PATH` among its routes."""
    settings = get_settings()
    configure_logging(json_lines=settings.is_production)
    routes = create_routes_app(settings)
    routes.add_route(BARE_POST_PATH, bare_post, methods=["POST"])
    bastion: Bastion = routes.state.bastion
    # As create_app: the operations endpoints are among the routes already.
    return bastion.protect(routes, operations=False)
