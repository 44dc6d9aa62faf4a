"""A Litestar app with a hand-written login, protected by bastion.

    uvicorn --factory examples.litestar_app.app:create_app

The login route is the app's own (``POST /login``, JSON ``{"username",
"password"}``, 401 on a wrong password); bastion does not know how it checks
passwords. The guard counts, limits and audits its attempts all the same.

``GET /now`` stands for every route of an app that needs its database: while
the database cannot be reached it answers 503 with ``Retry-After`` (bastion's
failure rule, through Litestar's ``after_exception`` hook), not Litestar's 500.
"""

from __future__ import annotations

import hmac
import os
from typing import cast

from litestar import Litestar, get, post
from litestar.exceptions import NotAuthorizedException
from sqlalchemy import text
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

    @get("/now")
    async def now() -> dict[str, str]:
        """The database's clock, read through bastion's engine (an app may keep its own)."""
        async with security.database.session() as db:
            value = await db.scalar(text("SELECT CURRENT_TIMESTAMP"))
        return {"database_time": str(value)}

    app = Litestar(route_handlers=[index, login, now], lifespan=[security.lifespan])
    # Litestar types its ASGI callable more narrowly than the ASGI spec; it is one.
    return security.protect(cast("ASGIApp", app), logins=[LoginRoute("/login")])
