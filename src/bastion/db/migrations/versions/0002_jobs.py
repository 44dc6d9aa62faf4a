"""Background jobs: procrastinate's schema (PostgreSQL only) and the bastion_job_run history.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

procrastinate ships its schema as one SQL script (functions, triggers, enum
types). asyncpg prepares every statement it is given through SQLAlchemy, and
a prepared statement holds one command, so the script goes to asyncpg's own
``execute``, which sends an argument-less script with the simple-query
protocol. On SQLite there is no job queue (jobs run inline), so only
``bastion_job_run`` is created there.

A later procrastinate release that changes its schema ships migration
scripts (``procrastinate.schema.migrations_path``); each becomes a new
revision here, so ``bastion migrate`` stays the one way to update a database.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from procrastinate.schema import SchemaManager
from sqlalchemy.util import await_only

from bastion.db._types import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_PG_DROP = [
    "DROP TABLE IF EXISTS procrastinate_events, procrastinate_periodic_defers, "
    "procrastinate_jobs, procrastinate_workers CASCADE",
    "DROP TYPE IF EXISTS procrastinate_job_to_defer_v1, procrastinate_job_event_type, "
    "procrastinate_job_status CASCADE",
]


def _run_script(script: str) -> None:
    """Run a multi-statement script on the migration's own asyncpg connection."""
    driver = op.get_bind().connection.driver_connection
    assert driver is not None
    await_only(driver.execute(script))


def upgrade() -> None:
    op.create_table(
        "bastion_job_run",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("job_id", sa.BigInteger(), nullable=False),
        sa.Column("task", sa.String(128), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error", sa.String(128), nullable=True),
        sa.Column("worker", sa.String(64), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_bastion_job_run_job_id", "bastion_job_run", ["job_id"])
    if op.get_context().dialect.name == "postgresql":
        _run_script(SchemaManager.get_schema())


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for statement in _PG_DROP:
            op.execute(statement)
    op.drop_index("ix_bastion_job_run_job_id", "bastion_job_run")
    op.drop_table("bastion_job_run")
