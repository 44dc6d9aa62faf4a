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


def describe_database_error(exc: BaseException) -> str:
    """Tell "not migrated yet" apart from "not reachable": the fixes differ."""
    text = str(exc).lower()
    if "no such table" in text or ("relation" in text and "does not exist" in text):
        return "the database has no bastion tables yet; run `bastion migrate` first"
    return f"database unavailable ({type(exc).__name__})"
