"""The SQLSTATE of a database error, read the same way on PostgreSQL and SQLite.

Three judges read it: the failure rule (is the database out of reach? see
:mod:`bastion.db._errors`), the schema check (is bastion's table missing? see
:mod:`bastion.db._schema`) and the CLI's one-line messages (which fix does the
operator need? see :mod:`bastion.cli._errors`). They must agree, so there is
one reader. PostgreSQL's drivers carry the code (asyncpg on the error SQLAlchemy
wraps, or on its cause); SQLite has no SQLSTATE, so the few of its messages
that matter are mapped to PostgreSQL's codes for the same condition.
"""

from __future__ import annotations

#: SQLite's messages (lower case) for the conditions PostgreSQL names by SQLSTATE.
SQLITE_STATES = {
    "no such table": "42P01",  # undefined_table
    "no such column": "42703",  # undefined_column
    "readonly database": "42501",  # insufficient_privilege
    "already another table or index": "42P07",  # duplicate_table
    "already exists": "42P07",
}

#: SQLSTATE classes of a server that cannot serve now (connection exception,
#: insufficient resources, operator intervention), not of a wrong statement.
UNAVAILABLE_CLASSES = frozenset({"08", "53", "57"})


def sqlstate(exc: BaseException) -> str | None:
    """The five-character SQLSTATE ``exc`` carries, or one SQLite's message stands for."""
    orig = getattr(exc, "orig", None)  # a SQLAlchemy DBAPIError wraps the driver's error
    for candidate in (orig, orig.__cause__ if orig is not None else None, exc):
        code = getattr(candidate, "sqlstate", None)
        if isinstance(code, str) and len(code) == 5:
            return code
    text = str(orig if orig is not None else exc).lower()
    return next((code for part, code in SQLITE_STATES.items() if part in text), None)
