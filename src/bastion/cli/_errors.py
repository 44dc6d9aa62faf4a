"""Which failures of a command are "the database is unavailable", and how to say so.

A command that meets a down or unmigrated database ends with one line and
exit status 1, not a traceback; any other exception is a bug and keeps its
(redacted) traceback. The difference is judged by where an exception was
raised, not only by its type: an ``OSError`` is just as likely a closed pipe
or a full disk.
"""

from __future__ import annotations

import re

#: The name in a "duplicate" error: PostgreSQL quotes it (``relation "x" already
#: exists``), SQLite does not (``table x already exists``, ``... with this name: x``).
_TAKEN_NAME = re.compile(r'(?:"([^"]+)"|(\S+)) already exists|with this name: "?([^"\s]+)')


def from_database(exc: BaseException) -> bool:
    """Whether a database call failed, rather than bastion's own code.

    A driver's error, wrapped by SQLAlchemy or raised bare by code that calls
    the driver itself (:func:`bastion.db._errors.is_driver_error`), the pool's
    timeout, or an ``OSError`` (a refused connect, a deadline) raised inside
    database code. Any other exception is a bug, even when raised in SQLAlchemy.
    """
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    from bastion.db import DATABASE_ERRORS
    from bastion.db._errors import is_driver_error, raised_in_database_code

    if isinstance(exc, DBAPIError | PoolTimeout) or is_driver_error(exc):
        return True
    return isinstance(exc, DATABASE_ERRORS) and raised_in_database_code(exc)


#: PostgreSQL SQLSTATEs that mean the server answered and refused, each with what to do
#: (a missing table or column: :data:`bastion.db._schema.ADVICE`, as the health check says it).
_REFUSALS = {
    "42501": "the database refused permission on bastion's tables; grant the DATABASE_URL "
    "role the rights on the bastion_* tables",
    "3D000": "the database named in DATABASE_URL does not exist; create it first",
    "28P01": "the database refused the DATABASE_URL credentials",
    "28000": "the database refused the DATABASE_URL role (pg_hba.conf or the role's rights)",
}

#: SQLSTATEs of a name already taken: duplicate_table (a table or index),
#: duplicate_object (a type), duplicate_function. Only a migration creates names.
_TAKEN = frozenset({"42P07", "42710", "42723"})


def describe_database_error(exc: BaseException) -> str:
    """One line that says which database failure this is: the fixes differ.

    "Unavailable" is said only when the database could not be reached; a
    missing table, a refused permission or a database that does not exist are
    answers from a database that is there, and each gets its own line.
    """
    from bastion.db._schema import ADVICE, SchemaError
    from bastion.db._sqlstate import UNAVAILABLE_CLASSES, sqlstate

    if isinstance(exc, SchemaError):
        return str(exc)
    code = sqlstate(exc)
    if code in _TAKEN:
        return _taken(exc)
    answers = {"42P01": f"{ADVICE['missing']} first", "42703": ADVICE["behind"], **_REFUSALS}
    if code in answers:
        return answers[code]
    if code is not None and code[:2] not in UNAVAILABLE_CLASSES:
        return f"the database refused a statement (SQLSTATE {code}, {type(exc).__name__})"
    return f"database unavailable ({type(exc).__name__})"


def _taken(exc: BaseException) -> str:
    """The line for a name bastion's migration creates that the database already holds.

    The name is said when the error says it (a table left by another app, or
    by procrastinate installed on its own): it is what the operator must
    rename or drop. The migration is one transaction, so nothing was changed.
    """
    found = _TAKEN_NAME.search(str(getattr(exc, "orig", None) or exc))
    name = next((group for group in found.groups() if group), None) if found else None
    held = f'"{name}", a name' if name else "a table, index, type or function under a name"
    return f"the database already holds {held} bastion's migration creates; nothing was changed"
