"""Accounts a team can run: session public ids, password resets and known devices.

A session gets a public id that the session list shows and the revoke
endpoint takes; sessions that already exist get one here, so nobody is
signed out by the upgrade. ``bastion_password_reset`` keeps an HMAC of each
emailed reset token (never the token), ``bastion_known_device`` a keyed hash
of each device an account signed in from (for the new-device notice).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bastion.db._models import new_public_id
from bastion.db._types import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _user_id() -> sa.Column[int]:
    return sa.Column(
        "user_id", BigId, sa.ForeignKey("bastion_user.id", ondelete="CASCADE"), nullable=False
    )


def upgrade() -> None:
    op.add_column("bastion_session", sa.Column("public_id", sa.String(32), nullable=True))
    bind = op.get_bind()
    for (row_id,) in bind.execute(sa.text("SELECT id FROM bastion_session")).all():
        bind.execute(
            sa.text("UPDATE bastion_session SET public_id = :public_id WHERE id = :id"),
            {"public_id": new_public_id(), "id": row_id},
        )
    # Batch mode: SQLite cannot add NOT NULL or a constraint to an existing column in place.
    with op.batch_alter_table("bastion_session") as batch:
        batch.alter_column("public_id", existing_type=sa.String(32), nullable=False)
        batch.create_unique_constraint("uq_bastion_session_public_id", ["public_id"])

    op.create_table(
        "bastion_password_reset",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        _user_id(),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.Column("superseded", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("ip", sa.String(45), nullable=True),
    )
    op.create_index("ix_bastion_password_reset_user_id", "bastion_password_reset", ["user_id"])

    op.create_table(
        "bastion_known_device",
        sa.Column("id", BigId, primary_key=True),
        _user_id(),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_bastion_known_device_user_id", "bastion_known_device", ["user_id"])
    op.create_index(
        "uq_bastion_known_device_user_fingerprint",
        "bastion_known_device",
        ["user_id", "fingerprint"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_table("bastion_known_device")
    op.drop_table("bastion_password_reset")
    with op.batch_alter_table("bastion_session") as batch:
        batch.drop_constraint("uq_bastion_session_public_id", type_="unique")
        batch.drop_column("public_id")
