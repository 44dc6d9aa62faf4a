"""The tables: users, sessions, password resets, known devices, the audit log and job runs.

Every name is bastion's own (``bastion_*``, see :mod:`bastion.db._schema`): bastion
lives in the adopting app's database, beside tables such as the app's own
``users``, and must never collide with one.

The audit log has no foreign keys on purpose: a row must outlive the user,
the session or anything else it mentions, so that history survives deletion.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bastion.db._types import UTCDateTime, utcnow

PUBLIC_ID_BYTES = 16


def new_public_id() -> str:
    """A session's public id: 128 random bits, drawn apart from the token."""
    return secrets.token_urlsafe(PUBLIC_ID_BYTES)


# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a real BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "bastion_user"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("uq_bastion_user_email_lower", func.lower(email), unique=True),)

    @property
    def is_active(self) -> bool:
        return self.deactivated_at is None


class UserSession(Base):
    """A signed-in browser. Only an HMAC-SHA256 of the token is stored, never the token."""

    __tablename__ = "bastion_session"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    #: What the session list shows and ``DELETE /api/auth/sessions/{id}`` takes: random,
    #: unrelated to the token, and not the row id (which would count the site's sign-ins).
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("bastion_user.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(256))


class PasswordReset(Base):
    """One emailed password-reset link. Only an HMAC-SHA256 of its token is stored.

    ``used_at`` is set when the link resets the password; a newer request for
    the same account ends the older links the same way (``superseded``), so
    the confirm endpoint can say why a token no longer works.
    """

    __tablename__ = "bastion_password_reset"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("bastion_user.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    superseded: Mapped[bool] = mapped_column(Boolean, default=False)
    ip: Mapped[str | None] = mapped_column(String(45))


class KnownDevice(Base):
    """A device an account signed in from: browser, system and network, as one keyed hash.

    A sign-in from a device not seen in the last 30 days sends a security
    notice (``auth.sign_in.new_device``). Only the HMAC is kept, so the table
    is no second log of where each user has been.
    """

    __tablename__ = "bastion_known_device"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("bastion_user.id", ondelete="CASCADE"), index=True
    )
    fingerprint: Mapped[str] = mapped_column(String(64))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        Index("uq_bastion_known_device_user_fingerprint", user_id, fingerprint, unique=True),
    )


class TotpSecret(Base):
    """An account's TOTP secret (RFC 6238), encrypted under a key derived from SECRET_KEY.

    ``confirmed_at`` is None between enrolment and the first right code: the
    second factor is on only once it is set. ``last_step`` is the last time
    step a code was accepted for (RFC 6238 section 5.2): a code of that step
    or an earlier one is refused, and the update that records a step is one
    conditional UPDATE, so two instances cannot both accept one code.
    """

    __tablename__ = "bastion_totp"

    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("bastion_user.id", ondelete="CASCADE"), primary_key=True
    )
    secret_ciphertext: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_step: Mapped[int | None] = mapped_column(BigInteger, default=None)


class BackupCode(Base):
    """One single-use backup code; only an HMAC-SHA256 of it is stored."""

    __tablename__ = "bastion_backup_code"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("bastion_user.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class Passkey(Base):
    """A WebAuthn credential: its id, public key (COSE) and signature counter."""

    __tablename__ = "bastion_passkey"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("bastion_user.id", ondelete="CASCADE"), index=True
    )
    #: The credential id, base64url without padding (at most 1,023 bytes raw).
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    transports: Mapped[list[str]] = mapped_column(JSON, default=list)
    name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class WebAuthnChallenge(Base):
    """A WebAuthn challenge handed out: single use, five minutes, stored as an HMAC.

    The browser's answer carries the challenge in its clientDataJSON; its HMAC
    finds the row, which says what it was for and whose it was, and is spent
    by one conditional UPDATE (a replay finds it spent, on every instance).
    """

    __tablename__ = "bastion_webauthn_challenge"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    challenge_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: ``register`` or ``sign_in``.
    purpose: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("bastion_user.id", ondelete="CASCADE"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class PendingSignIn(Base):
    """A right password awaiting its second factor: not a session, and it authorises nothing.

    Its cookie holds a random token, this table an HMAC of it. It lives five
    minutes and dies after five wrong codes.
    """

    __tablename__ = "bastion_pending_sign_in"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("bastion_user.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    failures: Mapped[int] = mapped_column(Integer, default=0)


class AuditLog(Base):
    """One security-relevant event. Append-only: the migration forbids UPDATE and DELETE."""

    __tablename__ = "bastion_audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str | None] = mapped_column(String(254))
    subject: Mapped[str | None] = mapped_column(String(254))
    client_ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(256))
    outcome: Mapped[str] = mapped_column(String(16))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class JobRun(Base):
    """One run of a background job that reached its end: succeeded, or raised.

    The queue (procrastinate's tables, or the inline backend's memory) says
    where a job stands; this says what its runs did, on either backend, so
    "how many runs completed" survives a worker's death. No foreign key: a
    finished job may be deleted from the queue, its history stays.
    """

    __tablename__ = "bastion_job_run"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job_id: Mapped[int] = mapped_column(BigInteger, index=True)
    task: Mapped[str] = mapped_column(String(128))
    attempt: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(String(128))
    worker: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
