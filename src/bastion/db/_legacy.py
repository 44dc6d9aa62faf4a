"""Move a database migrated by an older bastion onto bastion's own names, in place.

Before the ``bastion_`` prefix, bastion created ``users``, ``sessions``,
``audit_log`` and ``job_runs`` and kept its revision in ``alembic_version``,
names an adopting app is likely to use itself. Such a database is recognised
here and renamed, losing nothing: tables, their indexes, constraints,
sequences and the audit log's append-only triggers take the names a fresh
database gets, and the revision moves to
:data:`~bastion.db._schema.VERSION_TABLE`. Sessions keep their token HMACs,
so a signed-in browser stays signed in.

Recognising it must never mistake an app's own history for bastion's: ids
such as ``0001`` are common. So ``alembic_version`` must hold exactly one of
bastion's old revision ids *and* every table bastion had at that revision
must exist with exactly bastion's columns; otherwise nothing is touched.
It runs on the migration's connection, in its transaction (both backends do
DDL in transactions), so a failure leaves the database as it was.
"""

from __future__ import annotations

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from bastion.db._schema import VERSION_TABLE

#: The tables bastion created before the prefix, with their new names, per old revision.
RENAMES: dict[str, tuple[tuple[str, str], ...]] = {
    "0001": (
        ("users", "bastion_user"),
        ("sessions", "bastion_session"),
        ("audit_log", "bastion_audit_log"),
    ),
}
RENAMES["0002"] = (*RENAMES["0001"], ("job_runs", "bastion_job_run"))

#: Each old table's columns, as bastion created them: the fingerprint.
_COLUMNS: dict[str, frozenset[str]] = {
    "users": frozenset(
        {"id", "email", "password_hash", "is_admin", "deactivated_at", "created_at"}
    ),
    "sessions": frozenset(
        {"id", "token_hash", "user_id", "created_at", "expires_at", "last_seen_at", "ip"}
        | {"user_agent"}
    ),
    "audit_log": frozenset(
        {"id", "at", "action", "actor", "subject", "client_ip", "user_agent", "outcome"}
        | {"details"}
    ),
    "job_runs": frozenset(
        {"id", "job_id", "task", "attempt", "outcome", "error", "worker", "started_at"}
        | {"finished_at"}
    ),
}

#: Named indexes: old name, new name, and what SQLite (which cannot rename an index) recreates.
_INDEXES = (
    ("uq_users_email_lower", "uq_bastion_user_email_lower", "bastion_user", "lower(email)", True),
    ("ix_sessions_user_id", "ix_bastion_session_user_id", "bastion_session", "user_id", False),
    ("ix_audit_log_at", "ix_bastion_audit_log_at", "bastion_audit_log", "at", False),
    ("ix_audit_log_action", "ix_bastion_audit_log_action", "bastion_audit_log", "action", False),
    ("ix_job_runs_job_id", "ix_bastion_job_run_job_id", "bastion_job_run", "job_id", False),
)

_SQLITE_TRIGGERS = (
    "DROP TRIGGER audit_log_no_update",
    "DROP TRIGGER audit_log_no_delete",
    """CREATE TRIGGER bastion_audit_log_no_update BEFORE UPDATE ON bastion_audit_log
       BEGIN SELECT RAISE(ABORT, 'bastion_audit_log is append-only'); END""",
    """CREATE TRIGGER bastion_audit_log_no_delete BEFORE DELETE ON bastion_audit_log
       BEGIN SELECT RAISE(ABORT, 'bastion_audit_log is append-only'); END""",
)

_PG_TRIGGERS = (
    "ALTER TRIGGER audit_log_no_change ON bastion_audit_log RENAME TO bastion_audit_log_no_change",
    "ALTER FUNCTION audit_log_append_only() RENAME TO bastion_audit_log_append_only",
    """CREATE OR REPLACE FUNCTION bastion_audit_log_append_only() RETURNS trigger AS $$
       BEGIN
         RAISE EXCEPTION 'bastion_audit_log is append-only';
       END;
       $$ LANGUAGE plpgsql""",
)


def legacy_revision(connection: Connection) -> str | None:
    """The old revision of a database an older bastion migrated, or None if it is not one."""
    tables = set(inspect(connection).get_table_names())
    if "alembic_version" not in tables or VERSION_TABLE in tables:
        return None
    rows = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(rows) != 1 or rows[0] not in RENAMES:
        return None
    revision = str(rows[0])
    for old, _new in RENAMES[revision]:
        if old not in tables:
            return None
        columns = {column["name"] for column in inspect(connection).get_columns(old)}
        if columns != _COLUMNS[old]:
            return None
    return revision


def _rename_pg_names(connection: Connection, old: str, new: str) -> None:
    """What PostgreSQL named after the table: its id sequence and its constraints (primary
    key, unique, foreign key, and from PostgreSQL 18 each NOT NULL), as a fresh database
    names them. Renaming a primary-key or unique constraint renames its index too."""
    connection.execute(text(f"ALTER SEQUENCE {old}_id_seq RENAME TO {new}_id_seq"))
    names = connection.execute(
        text("SELECT conname FROM pg_constraint WHERE conrelid = CAST(:t AS regclass)"),
        {"t": new},
    ).scalars()
    for name in [str(name) for name in names if str(name).startswith(f"{old}_")]:
        renamed = new + name[len(old) :]
        connection.execute(text(f'ALTER TABLE {new} RENAME CONSTRAINT "{name}" TO "{renamed}"'))


def rename_legacy(connection: Connection, revision: str) -> tuple[tuple[str, str], ...]:
    """Rename the tables of ``revision`` and what hangs on them; returns (old, new) pairs.

    The caller then stamps :data:`VERSION_TABLE` with ``revision``; this drops
    ``alembic_version``, which held bastion's one row and nothing else.
    """
    renames = RENAMES[revision]
    postgres = connection.dialect.name == "postgresql"
    for old, new in renames:
        connection.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))
        if postgres:
            _rename_pg_names(connection, old, new)
    renamed = {new for _old, new in renames}
    for old_index, new_index, table, columns, unique in _INDEXES:
        if table not in renamed:
            continue
        if postgres:
            connection.execute(text(f"ALTER INDEX {old_index} RENAME TO {new_index}"))
        else:
            connection.execute(text(f"DROP INDEX {old_index}"))
            kind = "UNIQUE INDEX" if unique else "INDEX"
            connection.execute(text(f"CREATE {kind} {new_index} ON {table} ({columns})"))
    for statement in _PG_TRIGGERS if postgres else _SQLITE_TRIGGERS:
        connection.execute(text(statement))
    # It held bastion's one row and nothing else (legacy_revision checked): it was bastion's.
    connection.execute(text("DROP TABLE alembic_version"))
    return renames
