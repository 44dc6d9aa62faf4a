"""Which exceptions mean "the database cannot be reached", as opposed to a bug.

The failure rule (:mod:`bastion.ops._failures`) answers the first kind with a
503 and ``Retry-After`` (wait, then try again: nothing is wrong with the
request) and the second with a 500. So the line between them must be drawn
by what the error says, not by its family: SQLAlchemy's ``OperationalError``
holds both SQLite's "database is locked" (busy: try again) and its "no such
table" (a missing migration: a bug until someone acts), and a bare
``OSError`` is as likely the app's own file as the database's socket.

Unavailable, whichever engine raised it (bastion's or the app's own):

- :class:`~bastion.db.DatabaseUnavailable`, and the pool's checkout timeout;
- an error SQLAlchemy marked ``connection_invalidated`` (a connection lost
  under a query);
- a driver error whose SQLSTATE is of class ``08`` (connection exception),
  ``53`` (insufficient resources: too many connections, disk full) or ``57``
  (operator intervention: shutdown, "cannot connect now", a statement timeout);
- a SQLite error whose primary code is BUSY, LOCKED, IOERR, FULL or CANTOPEN;
- SQLAlchemy's ``OperationalError`` and ``InterfaceError`` that carry no such
  code (psycopg's "connection failed", asyncpg's "connection is closed");
- an ``OSError`` or ``TimeoutError`` (a refused connect, a deadline) raised
  from inside database code (:data:`DATABASE_MODULES`: the drivers, SQLAlchemy,
  Alembic, :mod:`bastion.db`), or caused by something that was.

Everything else is the app's: ``ProgrammingError``, ``IntegrityError``,
``DataError``, a SQLite "no such table", an ``OSError`` from the app's own
code.
"""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from bastion.db._engine import DatabaseUnavailable
from bastion.db._sqlstate import UNAVAILABLE_CLASSES

#: Code whose ``OSError`` or ``TimeoutError`` is the database's (the CLI judges by it too).
DATABASE_MODULES = (
    "sqlalchemy.",
    "asyncpg.",
    "aiosqlite.",
    "sqlite3.",
    "psycopg.",
    "psycopg_pool.",
    "procrastinate.",
    "alembic.",
    "bastion.db.",
)

#: SQLite primary result codes: BUSY, LOCKED, IOERR, FULL, CANTOPEN.
UNAVAILABLE_SQLITE_CODES = frozenset({5, 6, 10, 13, 14})

#: How far along ``__cause__``/``__context__`` a driver frame is looked for.
_CHAIN_DEPTH = 8


def is_unavailable(exc: BaseException) -> bool:
    """True if ``exc`` means the database could not be reached (see the module's list)."""
    if isinstance(exc, DatabaseUnavailable | PoolTimeout):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        said = _driver_says(exc.orig)
        if said is not None:
            return said
        return isinstance(exc, OperationalError | InterfaceError)
    if isinstance(exc, OSError):  # TimeoutError and ConnectionError are OSErrors
        return raised_in_database_code(exc)
    return bool(_driver_says(exc))


def is_driver_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a driver's own error with its code, not wrapped by SQLAlchemy.

    Code that calls a driver directly raises these bare: migration 0002 runs
    procrastinate's schema script on asyncpg's own ``execute`` (SQLAlchemy
    would prepare it, and a prepared statement holds one command), and
    procrastinate speaks psycopg. asyncpg's and psycopg's errors carry a
    SQLSTATE, sqlite3's a result code; an error with neither says nothing
    about the database, so it is left to the caller's other tests.
    """
    return _driver_says(exc) is not None


def _driver_says(error: BaseException | None) -> bool | None:
    """What a driver's own error code says: unavailable, not, or nothing (no code)."""
    if error is None:
        return None
    sqlite_code = getattr(error, "sqlite_errorcode", None)
    if isinstance(sqlite_code, int):
        return sqlite_code & 0xFF in UNAVAILABLE_SQLITE_CODES
    code = getattr(error, "sqlstate", None)
    if isinstance(code, str) and len(code) == 5:
        return code[:2] in UNAVAILABLE_CLASSES
    return None


def raised_in_database_code(exc: BaseException) -> bool:
    """Whether ``exc``, or an exception that caused it, was raised inside database code.

    The chain counts: a deadline's ``TimeoutError`` is raised by asyncio, from
    the cancellation of a driver's wait.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    for _ in range(_CHAIN_DEPTH):
        if current is None or id(current) in seen:
            return False
        seen.add(id(current))
        if _driver_frame(current.__traceback__):
            return True
        current = current.__cause__ or current.__context__
    return False


def _driver_frame(tb: TracebackType | None) -> bool:
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if isinstance(module, str) and (module + ".").startswith(DATABASE_MODULES):
            return True
        tb = tb.tb_next
    return False
