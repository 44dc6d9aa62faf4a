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
    if code == "42P01":
        return f"{ADVICE['missing']} first"
    if code == "42703":
        return ADVICE["behind"]
    if code in _REFUSALS:
        return _REFUSALS[code]
    if code is not None and code[:2] not in UNAVAILABLE_CLASSES:
        return f"the database refused a statement (SQLSTATE {code}, {type(exc).__name__})"
    return f"database unavailable ({type(exc).__name__})"
