"""Users, sessions and the append-only audit log.

The tables are created under bastion's own names (``bastion_*``); a database
that an older bastion migrated under the unprefixed names is renamed before
this history runs (:mod:`bastion.db._legacy`), so no fresh database ever holds
an unprefixed bastion table.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bastion.db._types import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# One statement per execute: asyncpg prepares each, and a prepared statement holds one command.
_PG_APPEND_ONLY = [
    """CREATE FUNCTION bastion_audit_log_append_only() RETURNS trigger AS $$
       BEGIN
         RAISE EXCEPTION 'bastion_audit_log is append-only';
       END;
       $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER bastion_audit_log_no_change BEFORE UPDATE OR DELETE ON bastion_audit_log
       FOR EACH ROW EXECUTE FUNCTION bastion_audit_log_append_only()""",
]

_SQLITE_APPEND_ONLY = [
    """CREATE TRIGGER bastion_audit_log_no_update BEFORE UPDATE ON bastion_audit_log
       BEGIN SELECT RAISE(ABORT, 'bastion_audit_log is append-only'); END""",
    """CREATE TRIGGER bastion_audit_log_no_delete BEFORE DELETE ON bastion_audit_log
       BEGIN SELECT RAISE(ABORT, 'bastion_audit_log is append-only'); END""",
]


def upgrade() -> None:
    op.create_table(
        "bastion_user",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("deactivated_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index(
        "uq_bastion_user_email_lower", "bastion_user", [sa.text("lower(email)")], unique=True
    )
    op.create_table(
        "bastion_session",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column(
            "user_id", BigId, sa.ForeignKey("bastion_user.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("ip", sa.String(45), nullable=True),
        sa.Column("user_agent", sa.String(256), nullable=True),
    )
    op.create_index("ix_bastion_session_user_id", "bastion_session", ["user_id"])
    op.create_table(
        "bastion_audit_log",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(254), nullable=True),
        sa.Column("subject", sa.String(254), nullable=True),
        sa.Column("client_ip", sa.String(45), nullable=True),
        sa.Column("user_agent", sa.String(256), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
    )
    op.create_index("ix_bastion_audit_log_at", "bastion_audit_log", ["at"])
    op.create_index("ix_bastion_audit_log_action", "bastion_audit_log", ["action"])
    postgres = op.get_context().dialect.name == "postgresql"
    for statement in _PG_APPEND_ONLY if postgres else _SQLITE_APPEND_ONLY:
        op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER bastion_audit_log_no_change ON bastion_audit_log")
        op.execute("DROP FUNCTION bastion_audit_log_append_only()")
    op.drop_table("bastion_audit_log")
    op.drop_table("bastion_session")
    op.drop_table("bastion_user")
