"""A second factor: TOTP secrets, backup codes, passkeys, WebAuthn challenges, pending sign-ins.

Every secret here is stored so that a copy of the database gives nothing
usable: the TOTP secret encrypted under a key derived from SECRET_KEY, backup
codes, challenges and pending sign-in tokens as HMACs, passkeys as public
keys.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bastion.db._types import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _user_id(*, nullable: bool = False, primary_key: bool = False) -> sa.Column[int]:
    return sa.Column(
        "user_id",
        BigId,
        sa.ForeignKey("bastion_user.id", ondelete="CASCADE"),
        nullable=nullable,
        primary_key=primary_key,
    )


def upgrade() -> None:
    op.create_table(
        "bastion_totp",
        _user_id(primary_key=True),
        sa.Column("secret_ciphertext", sa.String(255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("confirmed_at", UTCDateTime(), nullable=True),
        sa.Column("last_step", sa.BigInteger(), nullable=True),
    )
    op.create_table(
        "bastion_backup_code",
        sa.Column("id", BigId, primary_key=True),
        _user_id(),
        sa.Column("code_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_bastion_backup_code_user_id", "bastion_backup_code", ["user_id"])
    op.create_table(
        "bastion_passkey",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("public_id", sa.String(32), nullable=False, unique=True),
        _user_id(),
        sa.Column("credential_id", sa.String(1400), nullable=False, unique=True),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("transports", sa.JSON(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_bastion_passkey_user_id", "bastion_passkey", ["user_id"])
    op.create_table(
        "bastion_webauthn_challenge",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("challenge_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("purpose", sa.String(16), nullable=False),
        _user_id(nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
    )
    op.create_table(
        "bastion_pending_sign_in",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        _user_id(),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
    )
    op.create_index("ix_bastion_pending_sign_in_user_id", "bastion_pending_sign_in", ["user_id"])


def downgrade() -> None:
    for table in (
        "bastion_pending_sign_in",
        "bastion_webauthn_challenge",
        "bastion_passkey",
        "bastion_backup_code",
        "bastion_totp",
    ):
        op.drop_table(table)
