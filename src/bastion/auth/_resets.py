"""Password reset by email: a single-use link whose token is stored only as a keyed hash.

Asking (``POST /api/auth/password-reset``) does the same work whatever the
email: :meth:`~bastion.auth.AuthService.request_password_reset` counts the
request on the reset limiter (per client IP and per email, any email) and
queues one job, :data:`RESET_TASK`, with the email, the IP and the user
agent. It never reads the user table, so nothing in the answer (status,
body, headers, or the time taken, beyond noise) depends on whether the
account exists: the work that does depend on it (the lookup that finds
someone, a token, a message) is the job's, after the answer has gone and out
of the asker's sight. Tests do not time this (``bench/`` measures speed); it
holds by construction, because the two paths of the request are one path.

The job (:func:`deliver_reset`) looks the account up; for an active one it
draws a token (256 random bits), stores its HMAC under ``SECRET_KEY``, marks
the account's older unused tokens ``superseded``, and sends the link itself
through the mail transport, not through the ``bastion.mail.send`` job: job
arguments are stored in PostgreSQL, and the raw token must be stored nowhere.
A retry of the job draws a new token, which supersedes the one whose message
failed. The job writes the ``auth.password_reset.requested`` audit row,
whether an account matched being in its details only.

Confirming looks the token up by its HMAC (an equality on an indexed keyed
hash, so the look-up time says nothing about how close a guess came) and
refuses with one of three reasons (:data:`ResetReason`): ``invalid`` (no such
token, or its account was deactivated since), ``used``, ``expired``. A token
a newer request superseded is refused as ``used``: it has been spent, by the
newer request rather than by a reset, and what the user should do is the
same (open the newest email); ``invalid`` would suggest a mistyped link.
Marking a token used is one conditional UPDATE, so of two confirmations
racing with one token (on two instances) exactly one wins.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlencode

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.audit import PASSWORD_RESET_REQUESTED, AuditEntry, Outcome, record
from bastion.auth._sessions import hash_token
from bastion.db import Database, User
from bastion.db._models import PasswordReset
from bastion.db._types import utcnow
from bastion.mail import Message, transport_for

if TYPE_CHECKING:
    from bastion.config import Settings

#: The job a reset request queues (declared in :mod:`bastion.jobs._builtin`).
RESET_TASK = "bastion.auth.password_reset"
#: The page the emailed link opens, on ``APP_URL``.
RESET_PATH = "/reset-password"
#: A token is ``secrets.token_urlsafe(32)``: 43 characters. Anything much longer is not one.
MAX_TOKEN = 128

ResetReason = Literal["invalid", "used", "expired"]

#: What a refused confirmation tells the user, by reason.
REFUSALS: dict[ResetReason, str] = {
    "invalid": "this password reset link is not valid",
    "used": "this password reset link was already used, or a newer one was sent",
    "expired": "this password reset link has expired; ask for a new one",
}


class ResetRefused(ValueError):
    """A confirmation whose token does not reset anything; ``reason`` says why."""

    def __init__(self, reason: ResetReason) -> None:
        super().__init__(REFUSALS[reason])
        self.reason: ResetReason = reason


def reset_link(app_url: str, token: str) -> str:
    return f"{app_url.rstrip('/')}{RESET_PATH}?{urlencode({'token': token})}"


def reset_message(to: str, link: str, ttl: int) -> Message:
    """The email with the link. It says how long the link works and what to do if unasked."""
    minutes = max(1, ttl // 60)
    text = "\n".join(
        [
            "Someone asked to reset the password of the account with this email address.",
            "",
            f"To choose a new password, open this link within {minutes} minutes:",
            link,
            "",
            "The link works once. Resetting ends every session of the account.",
            "If you did not ask for this, ignore this message: your password stays as it is.",
        ]
    )
    return Message(to=to, subject="Reset your password", text=text)


async def deliver_reset(
    database: Database,
    settings: Settings,
    *,
    email: str,
    ip: str | None,
    user_agent: str | None,
    attempt: int = 1,
) -> bool:
    """The job's body: for an active account, a new token and its link by mail.

    Returns whether a message went out. Raises what the transport raises, so
    the job is retried; the retry draws a new token, and this one is then
    superseded (it was never delivered, and is stored only as a hash).
    """
    secret = settings.SECRET_KEY.encode()
    token: str | None = None
    async with database.session() as db:
        user = await db.scalar(select(User).where(func.lower(User.email) == email.lower()))
        active = user is not None and user.is_active
        if user is not None and active:
            token = secrets.token_urlsafe(32)
            now = utcnow()
            await _supersede(db, user.id)
            db.add(
                PasswordReset(
                    token_hash=hash_token(token, secret),
                    user_id=user.id,
                    created_at=now,
                    expires_at=now + timedelta(seconds=settings.PASSWORD_RESET_TTL),
                    ip=ip[:45] if ip else None,
                )
            )
            await db.commit()
        await record(
            db,
            AuditEntry(
                PASSWORD_RESET_REQUESTED,
                Outcome.SUCCESS,
                subject=email,
                client_ip=ip,
                user_agent=user_agent,
                details={"account": active, "attempt": attempt},
            ),
        )
    if user is None or token is None:
        return False
    link = reset_link(settings.APP_URL, token)
    await transport_for(settings).send(reset_message(user.email, link, settings.PASSWORD_RESET_TTL))
    return True


async def _supersede(db: AsyncSession, user_id: int, *, keep: int | None = None) -> None:
    """Mark every unused token of ``user_id`` but ``keep`` superseded (not committed)."""
    statement = update(PasswordReset).where(
        PasswordReset.user_id == user_id,
        PasswordReset.used_at.is_(None),
        PasswordReset.superseded.is_(False),
    )
    if keep is not None:
        statement = statement.where(PasswordReset.id != keep)
    await db.execute(statement.values(superseded=True).execution_options(synchronize_session=False))


async def find_reset(db: AsyncSession, token: str, secret: bytes) -> tuple[PasswordReset, User]:
    """The live reset for ``token`` and its account, or :class:`ResetRefused` with the reason."""
    if not token or len(token) > MAX_TOKEN:
        raise ResetRefused("invalid")
    row = (
        await db.execute(
            select(PasswordReset, User)
            .join(User, User.id == PasswordReset.user_id)
            .where(PasswordReset.token_hash == hash_token(token, secret))
        )
    ).first()
    if row is None:
        raise ResetRefused("invalid")
    reset, user = row
    if reset.used_at is not None or reset.superseded:
        raise ResetRefused("used")
    if utcnow() >= reset.expires_at:
        raise ResetRefused("expired")
    if not user.is_active:
        raise ResetRefused("invalid")
    return reset, user


async def consume(db: AsyncSession, reset: PasswordReset) -> None:
    """Mark ``reset`` used and the account's other unused tokens superseded (not committed).

    The mark is conditional on the token being unused still: a confirmation
    that lost a race with another one (on any instance) gets ``used``.
    """
    result = await db.execute(
        update(PasswordReset)
        .where(
            PasswordReset.id == reset.id,
            PasswordReset.used_at.is_(None),
            PasswordReset.superseded.is_(False),
        )
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if int(getattr(result, "rowcount", 0) or 0) != 1:
        await db.rollback()
        raise ResetRefused("used")
    await _supersede(db, reset.user_id, keep=reset.id)
