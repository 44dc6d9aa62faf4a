"""Every auth test runs twice: on SQLite (the embedded default) and on real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from bastion.auth import AuthService
from bastion.config import Settings, load_settings
from bastion.db import Database, migrate
from bastion_example.app import create_app


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'bastion.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    asyncio.run(migrate(url))
    return url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return load_settings(
        DATABASE_URL=database_url,
        APP_URL="http://testserver",
        ALLOWED_HOSTS="testserver",
        SIGN_IN_RATE_LIMIT="1000/minute",
        SIGN_IN_ACCOUNT_RATE_LIMIT="1000/minute",
        SIGN_UP_RATE_LIMIT="1000/minute",
        # argon2's cheapest parameters: these tests sign up and in hundreds of times, and
        # what they prove does not depend on the cost (tests/unit/test_password_profiles.py).
        PASSWORD_HASH_PROFILE="cheapest",
    )


def inner_app(app: object) -> Starlette:
    """The Starlette app inside the observer and the envelope, to reach its state."""
    while not isinstance(app, Starlette):
        app = getattr(app, "app", None)
        assert app is not None
    return app


class Browser:
    """An in-process client that behaves like a same-origin page (Sec-Fetch-Site)."""

    def __init__(self, settings: Settings, scheme: str = "http") -> None:
        self.app = create_app(settings)
        self.state = inner_app(self.app).state
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app, client=("127.0.0.1", 40000)),
            base_url=f"{scheme}://testserver",
            headers={"sec-fetch-site": "same-origin", "user-agent": "pytest-browser/1.0"},
        )

    @property
    def auth(self) -> AuthService:
        service: AuthService = self.state.auth
        return service

    @property
    def database(self) -> Database:
        database: Database = self.state.database
        return database

    async def sign_up(self, email: str, password: str) -> httpx.Response:
        return await self.client.post(
            "/api/auth/sign-up", json={"email": email, "password": password}
        )

    async def sign_in(self, email: str, password: str) -> httpx.Response:
        return await self.client.post(
            "/api/auth/sign-in", json={"email": email, "password": password}
        )

    async def close(self) -> None:
        await self.client.aclose()
        await self.state.auth.limiter.aclose()
        await self.database.dispose()


@pytest.fixture
async def browser(settings: Settings) -> AsyncIterator[Browser]:
    instance = Browser(settings)
    yield instance
    await instance.close()
