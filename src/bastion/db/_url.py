"""Turn the plain database URLs every tool prints into SQLAlchemy async URLs.

Operators copy URLs from psql, pg_dump, Heroku-style dashboards and SQLite
tutorials; none of those name a Python driver. The driver is an implementation
detail, so it is chosen here: aiosqlite for SQLite, asyncpg for PostgreSQL.
asyncpg because it is native asyncio (no thread hop per query), the fastest
PostgreSQL driver for Python, and SQLAlchemy's reference async driver.
"""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url

from bastion._parse.urls import database_url as plain_database_url

_SSLMODES = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}


def to_async_url(database_url: str) -> URL:
    """``sqlite:///p`` -> ``sqlite+aiosqlite:///p``; ``postgresql://`` -> ``+asyncpg``.

    A SQLAlchemy form (``postgresql+psycopg://``) is read as its plain form
    first (:func:`bastion._parse.urls.database_url`, the settings' rule), so a
    URL handed to :class:`~bastion.db.Database` directly gets the same driver.

    A libpq ``sslmode`` query parameter becomes asyncpg's ``ssl``, and a
    ``?host=/socket/dir`` query (the unix-socket form) is passed through, since
    SQLAlchemy's asyncpg dialect reads it.
    """
    url = make_url(plain_database_url(database_url))
    backend = url.get_backend_name()
    if backend == "sqlite":
        return url.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        query = dict(url.query)
        sslmode = query.pop("sslmode", None)
        if isinstance(sslmode, str) and sslmode in _SSLMODES:
            query["ssl"] = sslmode
        return url.set(drivername="postgresql+asyncpg", query=query)
    raise ValueError(f"unsupported database URL scheme: {url.drivername!r}")
