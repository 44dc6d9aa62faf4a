"""DATABASE_URL: the plain forms every tool prints, translated to async drivers."""

from __future__ import annotations

import pytest

from bastion.config import ConfigError, load_settings
from bastion.db._url import to_async_url


@pytest.mark.parametrize(
    ("plain", "driver", "database"),
    [
        ("sqlite:///bastion.db", "sqlite+aiosqlite", "bastion.db"),
        ("sqlite:////var/lib/bastion/app.db", "sqlite+aiosqlite", "/var/lib/bastion/app.db"),
        ("postgresql://app@db.internal/bastion", "postgresql+asyncpg", "bastion"),
        ("postgres://app:pw@db.internal:6543/bastion", "postgresql+asyncpg", "bastion"),
    ],
)
def test_driver_is_chosen_internally(plain: str, driver: str, database: str) -> None:
    url = to_async_url(plain)
    assert url.drivername == driver
    assert url.database == database


def test_unix_socket_form_keeps_its_host_query() -> None:
    url = to_async_url("postgresql://app@/bastion?host=/run/postgresql")
    assert url.drivername == "postgresql+asyncpg"
    assert url.host is None
    assert url.query["host"] == "/run/postgresql"


def test_libpq_sslmode_becomes_asyncpg_ssl() -> None:
    url = to_async_url("postgresql://app@db/bastion?sslmode=require")
    assert "sslmode" not in url.query
    assert url.query["ssl"] == "require"


@pytest.mark.parametrize("bad", ["mysql://u@h/db", "bastion.db", "http://db/x"])
def test_other_schemes_are_refused_at_start_up(bad: str) -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL: expected sqlite:///path or postgresql://"):
        load_settings(DATABASE_URL=bad)


@pytest.mark.parametrize(
    ("given", "plain"),
    [
        ("postgresql+asyncpg://app:pw@db.internal:6543/app", "postgresql://app:pw@db.internal:6543/app"),
        ("postgresql+psycopg://app@db.internal/app?sslmode=require", "postgresql://app@db.internal/app?sslmode=require"),
        ("postgres+asyncpg://app@/app?host=/run/postgresql", "postgres://app@/app?host=/run/postgresql"),
        ("sqlite+aiosqlite:///./app.db", "sqlite:///./app.db"),
        ("SQLITE+AIOSQLITE:////var/lib/app.db", "sqlite:////var/lib/app.db"),
    ],
)  # fmt: skip
def test_the_sqlalchemy_forms_an_app_has_are_accepted(given: str, plain: str) -> None:
    """The driver part is dropped once, so the engine, Alembic and psycopg all get one URL."""
    settings = load_settings(DATABASE_URL=given)
    assert plain == settings.DATABASE_URL
    url = to_async_url(settings.DATABASE_URL)
    assert url.drivername in ("sqlite+aiosqlite", "postgresql+asyncpg")
    assert to_async_url(given) == url  # a URL handed to Database() directly, too


def test_a_driver_url_gives_psycopg_a_plain_conninfo() -> None:
    """procrastinate's pool hands DATABASE_URL to psycopg, which knows no ``+asyncpg``."""
    from psycopg.conninfo import conninfo_to_dict

    settings = load_settings(
        DATABASE_URL="postgresql+asyncpg://app:pw@db.internal:6543/app", JOBS_ENABLED=True
    )
    assert conninfo_to_dict(settings.DATABASE_URL) == {
        "user": "app",
        "password": "pw",
        "host": "db.internal",
        "port": "6543",
        "dbname": "app",
    }


@pytest.mark.parametrize("bad", ["postgresql+pg8000://u@h/db", "mysql+asyncmy://u@h/db"])
def test_unknown_drivers_are_refused_without_the_password(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(DATABASE_URL=bad.replace("u@", "u:hunter2@"))
    assert "DATABASE_URL: expected sqlite:///path or postgresql://" in str(info.value)
    assert "hunter2" not in str(info.value)
