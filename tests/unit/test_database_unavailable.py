"""A database out of reach is the library's: 503 with Retry-After, not the framework's 500.

First the line between "unavailable" and "a bug", drawn on real errors (a
refused connect through SQLAlchemy and through asyncpg alone, SQLite's
locked, unopenable and missing-table errors, an integrity error, the app's
own OSError and timeout). Then the same routes in Starlette, FastAPI and
Litestar behind ``Bastion.protect()``, called in-process: the app's own
engine points at a port where nothing listens (refused at once, no server
needed), and a missing table stands for the app's bug. Last, bastion's own
engine on a server that accepts and never answers: 503 within the deadline.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest
from fastapi import FastAPI
from litestar import Litestar
from litestar import get as litestar_get
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from bastion import Bastion
from bastion.config import load_settings
from bastion.db import DatabaseUnavailable
from bastion.db._errors import is_unavailable
from bastion.ops._metrics import Metrics
from tests.support.asgi import call
from tests.support.servers import HungServer, free_port

JSON = [("accept", "application/json"), ("host", "localhost")]

#: An app behind ``Bastion.protect()``, and the metrics it counts into.
Protected = tuple[ASGIApp, Metrics]


async def _raised(work: Callable[[], object]) -> BaseException:
    try:
        result = work()
        if asyncio.iscoroutine(result):
            await result
    except BaseException as exc:  # the test looks at what was raised
        return exc
    raise AssertionError("nothing was raised")


@pytest.fixture
def refused_engine() -> AsyncEngine:
    """An app's own engine on a port where nothing listens."""
    return create_async_engine(f"postgresql+asyncpg://app@127.0.0.1:{free_port()}/app")


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> AsyncEngine:
    return create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")


async def _select(engine: AsyncEngine, sql: str = "SELECT 1") -> object:
    async with engine.connect() as connection:
        return (await connection.execute(text(sql))).scalar()


# -- the line between unavailable and a bug ---------------------------------------------------


async def test_a_refused_connect_is_unavailable_through_sqlalchemy_and_asyncpg_alone(
    refused_engine: AsyncEngine,
) -> None:
    through_sqlalchemy = await _raised(lambda: _select(refused_engine))
    assert isinstance(through_sqlalchemy, OSError)  # raw: SQLAlchemy does not wrap it
    assert is_unavailable(through_sqlalchemy)
    alone = await _raised(lambda: asyncpg.connect(host="127.0.0.1", port=free_port()))
    assert is_unavailable(alone)
    assert is_unavailable(DatabaseUnavailable("jobs database: OperationalError"))


def test_sqlite_busy_and_unopenable_are_unavailable_a_missing_table_is_not(
    tmp_path: Path,
) -> None:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(path, timeout=0)
    with pytest.raises(sqlite3.OperationalError) as locked:
        other.execute("SELECT * FROM t")
    assert is_unavailable(locked.value)
    holder.execute("ROLLBACK")
    with pytest.raises(sqlite3.OperationalError) as missing:
        other.execute("SELECT * FROM nope")
    assert not is_unavailable(missing.value)
    with pytest.raises(sqlite3.OperationalError) as unopenable:
        sqlite3.connect(tmp_path / "no" / "such" / "dir.db")
    assert is_unavailable(unopenable.value)
    holder.close()
    other.close()


async def test_the_apps_bugs_are_not_unavailable(sqlite_engine: AsyncEngine) -> None:
    no_table = await _raised(lambda: _select(sqlite_engine, "SELECT * FROM nope"))
    assert not is_unavailable(no_table)  # an OperationalError, and a missing migration

    async def twice() -> None:
        async with sqlite_engine.begin() as connection:
            await connection.execute(text("CREATE TABLE u (x UNIQUE)"))
            await connection.execute(text("INSERT INTO u VALUES (1), (1)"))

    duplicate = await _raised(twice)
    assert isinstance(duplicate, IntegrityError)
    assert not is_unavailable(duplicate)
    await sqlite_engine.dispose()

    own_file = await _raised(lambda: Path("/no/such/file").read_text())
    assert isinstance(own_file, OSError)
    assert not is_unavailable(own_file)

    async def own_deadline() -> None:
        async with asyncio.timeout(0.001):
            await asyncio.sleep(1)

    timed_out = await _raised(own_deadline)
    assert isinstance(timed_out, TimeoutError)
    assert not is_unavailable(timed_out)


# -- whatever the framework -------------------------------------------------------------------


def _starlette(own: AsyncEngine, app_db: AsyncEngine) -> ASGIApp:
    async def down(request: Request) -> JSONResponse:
        return JSONResponse({"one": await _select(own)})

    async def bug(request: Request) -> JSONResponse:
        return JSONResponse({"x": await _select(app_db, "SELECT * FROM nope")})

    return Starlette(routes=[Route("/down", down), Route("/bug", bug)])


def _fastapi(own: AsyncEngine, app_db: AsyncEngine) -> ASGIApp:
    api = FastAPI()

    @api.get("/down")
    async def down() -> dict[str, object]:
        return {"one": await _select(own)}

    @api.get("/bug")
    async def bug() -> dict[str, object]:
        return {"x": await _select(app_db, "SELECT * FROM nope")}

    return api


def _litestar(own: AsyncEngine, app_db: AsyncEngine) -> ASGIApp:
    @litestar_get("/down")
    async def down() -> dict[str, object]:
        return {"one": await _select(own)}

    @litestar_get("/bug")
    async def bug() -> dict[str, object]:
        return {"x": await _select(app_db, "SELECT * FROM nope")}

    # No logging_config: Litestar's default would take over the root logger of the test run.
    return Litestar(route_handlers=[down, bug], logging_config=None)  # type: ignore[return-value]


@pytest.fixture
async def protected_by(
    tmp_path: Path,
) -> AsyncIterator[Callable[[Callable[[AsyncEngine, AsyncEngine], ASGIApp]], Protected]]:
    engines: list[AsyncEngine] = []
    made: list[Bastion] = []

    def build(make: Callable[[AsyncEngine, AsyncEngine], ASGIApp]) -> Protected:
        own = create_async_engine(f"postgresql+asyncpg://app@127.0.0.1:{free_port()}/app")
        app_db = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")
        engines.extend((own, app_db))
        settings = load_settings(DATABASE_URL=f"sqlite:///{tmp_path / 'bastion.db'}")
        metrics = Metrics()
        security = Bastion(settings, metrics=metrics, configure_logging=False)  # caplog reads them
        made.append(security)
        return security.protect(make(own, app_db), operations=False), metrics

    yield build
    for engine in engines:
        await engine.dispose()
    for security in made:
        await security.database.dispose()


@pytest.mark.parametrize("make", [_starlette, _fastapi, _litestar], ids=lambda f: f.__name__[1:])
async def test_a_database_out_of_reach_answers_503_in_every_framework(
    make: Callable[[AsyncEngine, AsyncEngine], ASGIApp],
    protected_by: Callable[[Callable[[AsyncEngine, AsyncEngine], ASGIApp]], Protected],
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, metrics = protected_by(make)
    with caplog.at_level(logging.INFO, logger="bastion.errors"):
        down = await call(app, path="/down", headers=JSON)
        warnings = [r for r in caplog.records if r.name == "bastion.errors"]
    assert down.status == 503, down.body
    assert down.header("retry-after") == "5"
    assert down.header("cache-control") == "no-store"
    assert down.header("x-content-type-options") == "nosniff"  # answered inside the envelope
    assert b'"reason": "DATABASE_UNAVAILABLE"' in down.body
    (line,) = warnings
    assert line.levelno == logging.WARNING
    assert "ConnectionRefusedError" in line.getMessage()
    assert "127.0.0.1" not in line.getMessage()  # the class, never the message
    assert metrics.database_errors._value.get() == 1

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="bastion.errors"):
        bug = await call(app, path="/bug", headers=JSON)
        errors = [r for r in caplog.records if r.name == "bastion.errors"]
    assert bug.status == 500, bug.body
    assert "retry-after" not in dict(bug.headers)
    (line,) = errors
    assert line.levelno == logging.ERROR
    assert "OperationalError" in line.getMessage()


async def test_a_database_hung_past_its_deadline_answers_503_within_it(
    hung_server: HungServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """bastion's own engine on a server that accepts and never answers: the connect deadline."""
    settings = load_settings(
        DATABASE_URL=f"postgresql+asyncpg://app@127.0.0.1:{hung_server.port}/app",
        DATABASE_TIMEOUT_MS=200,
    )
    security = Bastion(settings, metrics=Metrics(), configure_logging=False)  # caplog reads them

    async def needs_database(request: Request) -> JSONResponse:
        async with security.database.session() as db:
            return JSONResponse({"one": await db.scalar(text("SELECT 1"))})

    app = security.protect(Starlette(routes=[Route("/down", needs_database)]), operations=False)
    try:
        with caplog.at_level(logging.INFO, logger="bastion.errors"):
            started = time.monotonic()
            down = await call(app, path="/down", headers=JSON)
            elapsed = time.monotonic() - started
        assert down.status == 503, down.body
        assert down.header("retry-after") == "5"
        assert elapsed < 0.2 + 2.0  # the deadline, and a generous margin for a busy machine
        (line,) = [r for r in caplog.records if r.name == "bastion.errors"]
        assert line.levelno == logging.WARNING
        assert "TimeoutError" in line.getMessage()
    finally:
        await security.database.dispose()
