"""A Litestar app with a hand-written login, protected by bastion.

    uvicorn --factory examples.litestar_app.app:create_app

The login route is the app's own (``POST /login``, JSON ``{"username",
"password"}``, 401 on a wrong password); bastion does not know how it checks
passwords. The guard counts, limits and audits its attempts all the same.
"""

from __future__ import annotations

import hmac
import os
from typing import cast

from litestar import Litestar, get, post
from litestar.exceptions import NotAuthorizedException
from starlette.types import ASGIApp

from bastion import Bastion, LoginRoute

__all__ = ["create_app"]


@post("/login")
async def login(data: dict[str, str]) -> dict[str, str]:
    """The app's own check, standing in for whatever a real app does."""
    expected = os.environ.get("EXAMPLE_PASSWORD", "")
    given = data.get("password", "")
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise NotAuthorizedException("wrong username or password")
    return {"signed_in": data.get("username", "")}


@get("/")
async def index() -> dict[str, str]:
    return {"app": "litestar example"}


def create_app() -> ASGIApp:
    security = Bastion()
    app = Litestar(route_handlers=[index, login], lifespan=[security.lifespan])
    # Litestar types its ASGI callable more narrowly than the ASGI spec; it is one.
    return security.protect(cast("ASGIApp", app), logins=[LoginRoute("/login")])
