"""The database handle: one async engine per process, sessions scoped to a request.

Every way the database can be unavailable (refused, down, hung, restarted
under us) must end in a bounded wait and a clean 503, never a hung worker or a
stack trace, and the app must recover by itself when the database returns.
Three settings do that: a connect timeout, ``pool_pre_ping`` (a connection the
server dropped while we were not looking is replaced, not handed out), and a
pool checkout timeout. ``DATABASE_ERRORS`` is what "unavailable" means.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from bastion.config import Settings
from bastion.db._schema import SchemaState, read_revisions, state_of
from bastion.db._url import to_async_url


class DatabaseUnavailable(ConnectionError):
    """The database could not be reached, said by code that does not speak SQLAlchemy.

    The jobs queue talks to PostgreSQL through procrastinate and psycopg, whose
    errors are neither SQLAlchemy's nor ``OSError``; it raises this instead, so
    that every handler of :data:`DATABASE_ERRORS` answers a 503 for it too.
    """


#: Exceptions that mean "the database is unavailable" (as opposed to a bug).
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    DatabaseUnavailable,
    DBAPIError,
    PoolTimeout,
    OSError,
    TimeoutError,
)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers run beside the writer; busy_timeout waits instead of failing."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


class Database:
    """An async engine plus a session factory, built from a plain ``DATABASE_URL``."""

    def __init__(self, database_url: str, *, timeout: float = 2.0) -> None:
        self.url = to_async_url(database_url)
        self.timeout = timeout
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            if self.url.database and self.url.database != ":memory:":
                Path(self.url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self.engine: AsyncEngine = create_async_engine(self.url, pool_pre_ping=True)
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_async_engine(
                self.url,
                pool_pre_ping=True,
                pool_size=10,
                max_overflow=10,
                pool_timeout=timeout,
                pool_recycle=1800,
                connect_args={
                    "timeout": timeout,
                    "server_settings": {"application_name": "bastion"},
                },
            )
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        """The database of ``DATABASE_URL``, with ``DATABASE_TIMEOUT_MS`` as its timeout."""
        return cls(settings.DATABASE_URL, timeout=settings.DATABASE_TIMEOUT_MS / 1000)

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session for one request; its connection is returned to the pool on exit."""
        async with self.sessions() as session:
            yield session

    async def ping(self) -> bool:
        """``SELECT 1`` within the timeout. False on any failure, including a hang."""
        try:
            async with asyncio.timeout(self.timeout), self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except DATABASE_ERRORS:
            return False
        return True

    async def schema(self) -> SchemaState | None:
        """Where bastion's schema stands (:mod:`bastion.db._schema`); None: unreachable.

        One query within the timeout, in place of :meth:`ping`'s ``SELECT 1``: a
        missing version table still proves the database answered.
        """
        try:
            async with asyncio.timeout(self.timeout), self.engine.connect() as connection:
                revisions = await read_revisions(connection)
        except DATABASE_ERRORS:
            return None
        return state_of(revisions or [])

    def checked_out(self) -> int:
        """Connections currently lent out by the pool (a request must leave none)."""
        checked: int = self.engine.pool.checkedout()  # type: ignore[attr-defined]
        return checked

    async def dispose(self) -> None:
        await self.engine.dispose()
