"""``DATABASE_URL`` and ``VALKEY_URL``: the forms accepted, checked before any driver sees them.

A URL whose port is not a number fails later, inside a driver, in words that
quote the whole URL (password included); these checks refuse it at start-up,
in ours. Which driver serves the URL is chosen elsewhere
(:func:`bastion.db._url.to_async_url`): operators write the plain forms every
tool prints, and apps hand over the SQLAlchemy forms they already have
(``postgresql+asyncpg://``, ``postgresql+psycopg://``,
``sqlite+aiosqlite://``). The driver part is dropped here, so every consumer
(the engine, Alembic, procrastinate's psycopg conninfo) starts from one plain
URL.
"""

from __future__ import annotations

from urllib.parse import urlsplit

POSTGRES_SCHEMES = ("postgresql", "postgres")
DATABASE_SCHEMES = ("sqlite", *POSTGRES_SCHEMES)
#: The SQLAlchemy driver names accepted after ``+``, by plain scheme (bastion picks its own).
DRIVERS = {
    "sqlite": ("aiosqlite", "pysqlite"),
    "postgresql": ("asyncpg", "psycopg", "psycopg_async", "psycopg2"),
    "postgres": ("asyncpg", "psycopg", "psycopg_async", "psycopg2"),
}
VALKEY_SCHEMES = ("redis", "rediss", "valkey", "valkeys", "unix")


def database_url(value: str) -> str:
    """``value`` in its plain form if it is a SQLite or PostgreSQL URL with a parseable port.

    ``postgresql+asyncpg://u@h/db`` -> ``postgresql://u@h/db``; anything else
    (another database, an unknown driver) is a ValueError.
    """
    scheme = urlsplit(value).scheme
    plain, _, driver = scheme.partition("+")
    if plain not in DATABASE_SCHEMES or (driver and driver not in DRIVERS[plain]):
        raise ValueError(
            "expected sqlite:///path or postgresql://user@host/db, or their SQLAlchemy forms "
            "(postgresql+asyncpg://, postgresql+psycopg://, sqlite+aiosqlite://); "
            "drivers are chosen for you"
        )
    _port(value)
    return plain + value[len(scheme) :]


def database_backend(value: str) -> str:
    """``sqlite`` or ``postgresql`` for a URL :func:`database_url` accepted."""
    plain = urlsplit(value).scheme.partition("+")[0]
    return "sqlite" if plain == "sqlite" else "postgresql"


def valkey_url(value: str | None) -> str | None:
    """``value`` if it is a Valkey URL with a parseable port, None if blank; else ValueError."""
    if value is None or not value.strip():
        return None
    if urlsplit(value).scheme not in VALKEY_SCHEMES:
        raise ValueError("expected a URL such as redis://127.0.0.1:6379/0")
    _port(value)
    return value


def _port(url: str) -> None:
    try:
        urlsplit(url).port  # noqa: B018 - the property parses and validates the port
    except ValueError:
        raise ValueError("the port is not a number from 0 to 65535") from None
