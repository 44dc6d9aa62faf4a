"""An app that adopts bastion by the README's "Adopting bastion" alone, for ``uvicorn module:app``.

No call to ``bastion.ops.configure_logging``, no factory, no CLI: what a new
adopter writes.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bastion import Bastion, LoginRoute


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


async def login(request: Request) -> PlainTextResponse:
    return PlainTextResponse("no such account", status_code=401)


security = Bastion()
app = security.protect(
    Starlette(
        routes=[Route("/hello", hello), Route("/login", login, methods=["POST"])],
        lifespan=security.lifespan,
    ),
    logins=[LoginRoute("/login")],
)
