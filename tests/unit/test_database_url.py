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
