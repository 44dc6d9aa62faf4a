"""Which failures of a command are "the database is unavailable", and how to say so.

A command that meets a down or unmigrated database ends with one line and
exit status 1, not a traceback; any other exception is a bug and keeps its
(redacted) traceback. The difference is judged by where an exception was
raised, not only by its type: an ``OSError`` is just as likely a closed pipe
or a full disk.
"""

from __future__ import annotations

#: Code whose OSError or TimeoutError means "the database is unavailable".
DATABASE_MODULES = (
    "sqlalchemy",
    "asyncpg",
    "aiosqlite",
    "sqlite3",
    "psycopg",
    "psycopg_pool",
    "procrastinate",
    "alembic",
    "bastion.db",
)


def from_database(exc: BaseException) -> bool:
    """Whether a database call failed: a driver's error, or one raised inside database code."""
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if isinstance(exc, DBAPIError | PoolTimeout):
        return True
    tb = exc.__traceback__
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module.startswith(DATABASE_MODULES):
            return True
        tb = tb.tb_next
    return False


def describe_database_error(exc: BaseException) -> str:
    """Tell "not migrated yet" apart from "not reachable": the fixes differ."""
    text = str(exc).lower()
    if "no such table" in text or ("relation" in text and "does not exist" in text):
        return "the database has no bastion tables yet; run `bastion migrate` first"
    return f"database unavailable ({type(exc).__name__})"
