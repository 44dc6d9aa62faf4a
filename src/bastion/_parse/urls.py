"""``DATABASE_URL`` and ``VALKEY_URL``: the forms accepted, checked before any driver sees them.

A URL whose port is not a number fails later, inside a driver, in words that
quote the whole URL (password included); these checks refuse it at start-up,
in ours. Which driver serves the URL is chosen elsewhere
(:func:`bastion.db._url.to_async_url`): operators write the plain forms every
tool prints.
"""

from __future__ import annotations

from urllib.parse import urlsplit

POSTGRES_SCHEMES = ("postgresql", "postgres")
DATABASE_SCHEMES = ("sqlite", *POSTGRES_SCHEMES)
VALKEY_SCHEMES = ("redis", "rediss", "valkey", "valkeys", "unix")


def database_url(value: str) -> str:
    """``value`` if it is a SQLite or PostgreSQL URL with a parseable port; else ValueError."""
    if urlsplit(value).scheme not in DATABASE_SCHEMES:
        raise ValueError(
            "expected sqlite:///path or postgresql://user@host/db (drivers are chosen for you)"
        )
    _port(value)
    return value


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
