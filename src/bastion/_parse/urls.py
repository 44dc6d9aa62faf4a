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

from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

POSTGRES_SCHEMES = ("postgresql", "postgres")
DATABASE_SCHEMES = ("sqlite", *POSTGRES_SCHEMES)
#: The SQLAlchemy driver names accepted after ``+``, by plain scheme (bastion picks its own).
DRIVERS = {
    "sqlite": ("aiosqlite", "pysqlite"),
    "postgresql": ("asyncpg", "psycopg", "psycopg_async", "psycopg2"),
    "postgres": ("asyncpg", "psycopg", "psycopg_async", "psycopg2"),
}
VALKEY_SCHEMES = ("redis", "rediss", "valkey", "valkeys", "unix")
#: The schemes that name several hosts: Sentinels that know a primary, or Cluster seeds.
SENTINEL_SCHEME = "valkey+sentinel"
CLUSTER_SCHEME = "valkey+cluster"
_FORMS = (
    "expected redis://host:port/0, valkey+sentinel://host:port[,host:port...]/<primary name>"
    "[?db=N] or valkey+cluster://host:port[,host:port...]"
)


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


@dataclass(frozen=True, slots=True)
class ValkeyTarget:
    """What a ``VALKEY_URL`` names: one server, a Sentinel-managed primary, or a Cluster.

    ``url`` is the value as given (for a single server, valkey-py reads it
    itself); ``hosts`` are the Sentinels or the Cluster seeds. Parsed in one
    place, here, so the settings check, the client factory and the deploy
    checks agree on what a URL means.
    """

    kind: Literal["single", "sentinel", "cluster"]
    url: str
    hosts: tuple[tuple[str, int], ...] = ()
    username: str | None = None
    password: str | None = None
    #: The Sentinels' name for the primary (``valkey+sentinel`` only).
    service: str = ""
    db: int = 0


def valkey_url(value: str | None) -> str | None:
    """``value`` if it is a Valkey URL of a form :func:`valkey_target` accepts, None if blank."""
    if value is None or not value.strip():
        return None
    valkey_target(value)
    return value


def valkey_target(value: str) -> ValkeyTarget:
    """Parse a ``VALKEY_URL``; ValueError (one line, no password) if it is not one of the forms.

    ``valkey+sentinel://[user:password@]host:port[,host:port...]/<primary name>[?db=N]``
    ``valkey+cluster://[user:password@]host:port[,host:port...]``, or a plain
    ``valkey://``/``redis://`` URL that goes to valkey-py as it is. The
    password belongs to the data nodes; Sentinels are asked without one.
    """
    scheme, sep, rest = value.partition("://")
    if not sep:
        raise ValueError(_FORMS)
    if scheme in VALKEY_SCHEMES:
        _port(value)
        return ValkeyTarget("single", value)
    if scheme not in (SENTINEL_SCHEME, CLUSTER_SCHEME):
        raise ValueError(_FORMS)
    userinfo, at, hostpart = rest.rpartition("@")
    if not at:
        userinfo, hostpart = "", rest
    netloc, _, tail = hostpart.partition("/")
    path, _, query = tail.partition("?")
    if "?" in netloc:
        netloc, _, query = netloc.partition("?")
    hosts = tuple(_host_port(part) for part in netloc.split(","))
    username, password = _credentials(userinfo)
    options = parse_qs(query, keep_blank_values=True)
    if scheme == CLUSTER_SCHEME:
        if path or options:
            raise ValueError(
                "a valkey+cluster:// URL takes no path or options: a Cluster has only database 0"
            )
        return ValkeyTarget("cluster", value, hosts, username, password)
    service = unquote(path)
    if not service or "/" in service:
        raise ValueError(
            "a valkey+sentinel:// URL ends with the primary's name as the Sentinels know it "
            "(valkey+sentinel://h1:26379,h2:26379/mymaster)"
        )
    unknown = set(options) - {"db"}
    if unknown:
        raise ValueError(f"a valkey+sentinel:// URL takes only ?db=N, not {sorted(unknown)}")
    db = options.get("db", ["0"])[-1]
    if not db.isdigit():
        raise ValueError("?db= in a valkey+sentinel:// URL is a database number (0, 1, ...)")
    return ValkeyTarget("sentinel", value, hosts, username, password, service, int(db))


def _host_port(part: str) -> tuple[str, int]:
    host, colon, port = part.rpartition(":")
    if not colon:
        host, port = part, ""
    host = host.removeprefix("[").removesuffix("]")
    if not host:
        raise ValueError("every host in a multi-host Valkey URL is host:port, none empty")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("every host in a multi-host Valkey URL needs a port from 1 to 65535")
    return host, int(port)


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    if not userinfo:
        return None, None
    user, colon, password = userinfo.partition(":")
    return unquote(user) or None, unquote(password) if colon else None


def _port(url: str) -> None:
    try:
        urlsplit(url).port  # noqa: B018 - the property parses and validates the port
    except ValueError:
        raise ValueError("the port is not a number from 0 to 65535") from None
