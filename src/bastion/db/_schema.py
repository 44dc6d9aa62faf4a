"""Where bastion's schema stands in a database, read without Alembic.

bastion lives in the adopting app's database, beside the app's own tables and
often beside the app's own Alembic history. So every table it creates has a
``bastion_`` name, and its history is kept in its own version table,
:data:`VERSION_TABLE`, never in the ``alembic_version`` an app's Alembic uses.

The health endpoint, the startup warning and ``bastion check --deploy`` ask
"is the schema current?" on every probe or start, so the answer costs one
query and no Alembic import: the revision ids live here, in
:data:`REVISIONS`, and a test keeps them in step with the migration scripts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.db._sqlstate import sqlstate

#: bastion's Alembic version table (an app's Alembic keeps ``alembic_version``).
VERSION_TABLE = "bastion_alembic_version"
#: bastion's migration revisions, oldest first; the last is the head.
REVISIONS: tuple[str, ...] = ("0001", "0002", "0003", "0004")
HEAD = REVISIONS[-1]
#: The one query that says where the schema stands.
SELECT_REVISIONS = text("SELECT version_num FROM bastion_alembic_version")

#: ``current``: at the head; ``behind``: an older revision (run ``bastion migrate``);
#: ``missing``: no bastion tables at all; ``unknown``: a revision this bastion does
#: not know, which a newer bastion wrote.
SchemaState = Literal["current", "behind", "missing", "unknown"]

#: What to do about each state other than ``current``, said the same way everywhere.
ADVICE: dict[str, str] = {
    "missing": "the database has no bastion tables yet; run `bastion migrate`",
    "behind": "bastion's tables are behind this version of bastion; run `bastion migrate`",
    "unknown": "the database is at a bastion migration this version does not know "
    "(a newer bastion migrated it); run the newer bastion, or restore the database",
}


@dataclass(frozen=True)
class Migration:
    """One revision applied: its id and the first line of its docstring."""

    revision: str
    title: str


@dataclass
class MigrationReport:
    """What :func:`bastion.db.migrate` did to the database."""

    #: Revisions applied, oldest first (empty: the database was at the head already).
    applied: list[Migration] = field(default_factory=list)
    #: (old, new) table names, when an older bastion's unprefixed tables were renamed.
    renamed: tuple[tuple[str, str], ...] = ()
    #: The revision moved from ``alembic_version`` to bastion's own version table, if any.
    moved_revision: str | None = None
    head: str = HEAD


class SchemaError(Exception):
    """The schema is not one ``bastion migrate`` can work from; the message says why."""


def state_of(revisions: list[str]) -> SchemaState:
    """The state of a database whose version table holds ``revisions`` (empty: none)."""
    if not revisions:
        return "missing"
    if any(revision not in REVISIONS for revision in revisions):
        return "unknown"
    return "current" if revisions == [HEAD] else "behind"


def is_missing_table(exc: BaseException) -> bool:
    """Whether a statement failed because a table does not exist (SQLite or PostgreSQL)."""
    return isinstance(exc, DBAPIError) and sqlstate(exc) == "42P01"


async def read_revisions(connection: AsyncConnection) -> list[str] | None:
    """The revisions in :data:`VERSION_TABLE`; None when the table does not exist.

    Any other failure (the database went away) propagates. On PostgreSQL a failed
    statement spoils the transaction, so the caller ends it (a ``connect()``
    block does) and uses no other statement on it.
    """
    try:
        result = await connection.execute(SELECT_REVISIONS)
    except DBAPIError as exc:
        if is_missing_table(exc):
            return None
        raise
    return [str(row) for row in result.scalars()]
