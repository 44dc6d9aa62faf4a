"""The fastapi-users app, protected by bastion: the envelope, the sign-in guard, health and metrics.

Run it as any ASGI app (``bastion migrate`` first, for bastion's audit log)::

    uvicorn --factory examples.fastapi_users_app.app:create_app

Everything bastion adds is in :func:`create_app`, in the lines marked
"bastion"; the fastapi-users routes are mounted exactly as its docs show and
are not changed. Failed logins through ``/auth/jwt/login`` and
``/auth/cookie/login`` are limited per client IP and per account across every
instance sharing the Valkey, and audited with the client IP.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.types import ASGIApp

from bastion import Bastion, LoginRoute
from examples.fastapi_users_app.users import Base, UserCreate, UserRead, build_users

__all__ = ["create_app"]


def create_app() -> ASGIApp:
    security = Bastion()  # bastion: everything, from the environment
    database = security.database  # the app may share bastion's engine or keep its own
    users, jwt, cookie = build_users(database.sessions, security.settings.SECRET_KEY)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with security.lifespan(app):  # bastion: opens and closes with the app
            async with database.engine.begin() as connection:
                await connection.run_sync(Base.metadata.create_all)
            yield

    app = FastAPI(lifespan=lifespan)
    app.include_router(users.get_auth_router(jwt), prefix="/auth/jwt", tags=["auth"])
    app.include_router(users.get_auth_router(cookie), prefix="/auth/cookie", tags=["auth"])
    app.include_router(
        users.get_register_router(UserRead, UserCreate), prefix="/auth", tags=["auth"]
    )

    # bastion: the envelope, the guard on routes we did not write, /api/health and /api/metrics.
    return security.protect(
        app, logins=[LoginRoute("/auth/jwt/login"), LoginRoute("/auth/cookie/login")]
    )
