"""Apply the Alembic migrations programmatically (``bastion migrate``, ``bastion demo``).

No alembic.ini is needed at run time: the script location is this package,
and the connection is handed to env.py, so migrations run on the same async
driver and URL translation as the app. Everything happens in one
transaction: renaming an older bastion's tables (:mod:`bastion.db._legacy`),
then the revisions, so a failure leaves the database as it was.

The result says what was done, so ``bastion migrate`` can name the revisions
it applied or say it had nothing to do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, inspect
from sqlalchemy.engine import Connection

from bastion.db._engine import Database
from bastion.db._legacy import legacy_revision, rename_legacy
from bastion.db._schema import (
    ADVICE,
    REVISIONS,
    SELECT_REVISIONS,
    VERSION_TABLE,
    Migration,
    MigrationReport,
    SchemaError,
    state_of,
)

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _revisions(connection: Connection) -> list[str] | None:
    """bastion's revisions in its version table, None when it has none (sync twin of
    :func:`bastion.db._schema.read_revisions`, without a failed statement to undo)."""
    if VERSION_TABLE not in inspect(connection).get_table_names():
        return None
    rows = connection.execute(SELECT_REVISIONS).scalars()
    return [str(row) for row in rows]


def _upgrade(connection: Connection) -> MigrationReport:
    report = MigrationReport()
    config = alembic_config(connection)
    revision = legacy_revision(connection)
    if revision is not None:
        report.renamed = rename_legacy(connection, revision)
        report.moved_revision = revision
        command.stamp(config, revision)
    revisions = _revisions(connection)
    if revisions is not None and state_of(revisions) == "unknown":
        raise SchemaError(f"{ADVICE['unknown']} (revision {', '.join(revisions)!s})")

    def applied(*, step: Any, **_: Any) -> None:
        if step.is_upgrade and step.up_revision_id in REVISIONS:
            doc = (step.up_revision.doc or "").strip().splitlines()
            report.applied.append(Migration(step.up_revision_id, doc[0] if doc else ""))

    config.attributes["on_version_apply"] = applied
    command.upgrade(config, "head")
    return report


def _sqlite_transactional_ddl(database: Database) -> None:
    """Make SQLite's DDL part of the transaction, as PostgreSQL's is.

    Python's sqlite3 driver begins a transaction only before a data change, so
    ``ALTER TABLE`` and ``CREATE TABLE`` would each commit on their own and a
    failed rename would leave half the tables renamed. Driver-level autocommit
    plus an explicit ``BEGIN`` (SQLAlchemy's documented recipe) puts the whole
    migration in one transaction.
    """

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    def on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")

    event.listen(database.engine.sync_engine, "connect", on_connect)
    event.listen(database.engine.sync_engine, "begin", on_begin)


async def migrate(database_url: str) -> MigrationReport:
    """Bring the database at ``database_url`` to the latest schema; say what was done.

    One transaction on both backends: a failure leaves the database as it was.
    """
    database = Database(database_url, timeout=30)
    if database.is_sqlite:
        _sqlite_transactional_ddl(database)
    try:
        async with database.engine.begin() as connection:
            return await connection.run_sync(_upgrade)
    finally:
        await database.dispose()
