"""Which failures of a command are "the database is unavailable", and how to say so.

A command that meets a down or unmigrated database ends with one line and
exit status 1, not a traceback; any other exception is a bug and keeps its
(redacted) traceback. The difference is judged by where an exception was
raised, not only by its type: an ``OSError`` is just as likely a closed pipe
or a full disk.
"""

from __future__ import annotations


def from_database(exc: BaseException) -> bool:
    """Whether a database call failed: a driver's error, or one raised inside database code."""
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    from bastion.db._errors import raised_in_database_code

    return isinstance(exc, DBAPIError | PoolTimeout) or raised_in_database_code(exc)


#: PostgreSQL SQLSTATEs that mean the server answered and refused, each with what to do
#: (a missing table or column: :data:`bastion.db._schema.ADVICE`, as the health check says it).
_REFUSALS = {
    "42501": "the database refused permission on bastion's tables; grant the DATABASE_URL "
    "role the rights on the bastion_* tables",
    "42P07": "the database already holds a table or index under a name bastion creates; "
    "nothing was changed",
    "3D000": "the database named in DATABASE_URL does not exist; create it first",
    "28P01": "the database refused the DATABASE_URL credentials",
    "28000": "the database refused the DATABASE_URL role (pg_hba.conf or the role's rights)",
}
#: SQLSTATE classes of a server that cannot serve: connection, shutdown, resources.
_UNREACHABLE = ("08", "57", "53")
#: The same, by SQLite's message (it has no codes a driver passes on).
_SQLITE_REFUSALS = {
    "no such table": "42P01",
    "no such column": "42703",
    "readonly database": "42501",
    "already another table or index": "42P07",
    "already exists": "42P07",
}


def describe_database_error(exc: BaseException) -> str:
    """One line that says which database failure this is: the fixes differ.

    "Unavailable" is said only when the database could not be reached; a
    missing table, a refused permission or a database that does not exist are
    answers from a database that is there, and each gets its own line.
    """
    from bastion.db._schema import ADVICE, SchemaError

    if isinstance(exc, SchemaError):
        return str(exc)
    orig = getattr(exc, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate is None:
        cause = orig.__cause__ if orig is not None else None
        sqlstate = getattr(cause, "sqlstate", None)
    text = str(orig if orig is not None else exc).lower()
    if sqlstate is None:
        sqlstate = next((code for part, code in _SQLITE_REFUSALS.items() if part in text), None)
    if sqlstate == "42P01":
        return f"{ADVICE['missing']} first"
    if sqlstate == "42703":
        return ADVICE["behind"]
    if isinstance(sqlstate, str) and sqlstate in _REFUSALS:
        return _REFUSALS[sqlstate]
    if isinstance(sqlstate, str) and not sqlstate.startswith(_UNREACHABLE):
        return f"the database refused a statement (SQLSTATE {sqlstate}, {type(exc).__name__})"
    return f"database unavailable ({type(exc).__name__})"
