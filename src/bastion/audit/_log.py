"""Writing and reading audit rows."""

from __future__ import annotations

import enum
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.db._models import AuditLog
from bastion.db._types import utcnow

logger = logging.getLogger("bastion.audit")

SIGN_IN_FAILED = "auth.sign_in.failed"
#: Refused by the rate limit, aggregated: one row per client key, account and flush window.
SIGN_IN_BLOCKED = "auth.sign_in.blocked"
SIGN_IN_SUCCEEDED = "auth.sign_in.succeeded"
SIGN_IN_RATE_LIMITED = "auth.sign_in.rate_limited"
SIGN_OUT = "auth.sign_out"
SIGN_UP = "auth.sign_up"
PASSWORD_CHANGED = "auth.password.changed"  # noqa: S105 - audit action names, not secrets
PASSWORD_RESET_REQUESTED = "auth.password_reset.requested"  # noqa: S105
PASSWORD_RESET_COMPLETED = "auth.password_reset.completed"  # noqa: S105
SESSION_REVOKED = "auth.session.revoked"
SIGN_IN_NEW_DEVICE = "auth.sign_in.new_device"
PASSKEY_REGISTERED = "auth.passkey.registered"
PASSKEY_REMOVED = "auth.passkey.removed"
#: A passkey answer refused (its ``reason`` in the details: origin, rp_id, challenge...).
PASSKEY_REFUSED = "auth.passkey.refused"
#: The second factor (issue 24): TOTP turned on or off, a code or backup code right or wrong.
SECOND_FACTOR_ENABLED = "auth.second_factor.enabled"
SECOND_FACTOR_DISABLED = "auth.second_factor.disabled"
SECOND_FACTOR_FAILED = "auth.second_factor.failed"
SECOND_FACTOR_SUCCEEDED = "auth.second_factor.succeeded"

USER_AGENT_LIMIT = 256


class Outcome(enum.StrEnum):
    """How an audited action ended: a closed set, so a query or an alert can rely on it."""

    SUCCESS = "success"
    FAILURE = "failure"
    #: Refused by the rate limit before any password was checked.
    BLOCKED = "blocked"
    #: Allowed, and it used the last slot of a limit.
    TRIPPED = "tripped"


@dataclass(frozen=True)
class AuditEntry:
    """What to record. ``subject`` is what the action was about (the email tried)."""

    action: str
    outcome: Outcome
    subject: str | None = None
    actor: str | None = None
    client_ip: str | None = None
    user_agent: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _clip(value: str | None, limit: int) -> str | None:
    return None if value is None else value[:limit]


async def record(session: AsyncSession, entry: AuditEntry) -> None:
    """Append ``entry`` and commit it in its own transaction.

    Committing here means a failed sign-in is on record even though the
    request that caused it ends in a 401.
    """
    await record_many(session, [entry])


async def record_many(session: AsyncSession, entries: Sequence[AuditEntry]) -> None:
    """Append ``entries`` in one transaction: all of them are on record, or none."""
    at = utcnow()
    session.add_all(
        AuditLog(
            at=at,
            action=entry.action,
            outcome=entry.outcome.value,
            subject=_clip(entry.subject, 254),
            actor=_clip(entry.actor, 254),
            client_ip=_clip(entry.client_ip, 45),
            user_agent=_clip(entry.user_agent, USER_AGENT_LIMIT),
            details=entry.details,
        )
        for entry in entries
    )
    await session.commit()
    for entry in entries:
        logger.info(
            "audit action=%s outcome=%s subject=%r client=%s details=%r",
            entry.action,
            entry.outcome.value,
            entry.subject,
            entry.client_ip or "-",
            entry.details,
        )


async def recent(
    session: AsyncSession, *, limit: int = 50, offset: int = 0, action: str | None = None
) -> list[AuditLog]:
    """Newest first."""
    query = select(AuditLog).order_by(AuditLog.id.desc()).limit(limit).offset(offset)
    if action:
        query = query.where(AuditLog.action == action)
    return list((await session.scalars(query)).all())


#: Rows fetched per round trip by :func:`stream`: memory is bounded by this, not by the log.
STREAM_BATCH = 1_000


async def stream(
    session: AsyncSession,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    action: str | None = None,
    batch: int = STREAM_BATCH,
) -> AsyncIterator[Row[Any]]:
    """Every matching row, oldest first, ``since <= at < until``, in constant memory.

    An export (to a SIEM) must not stop at a row cap nor load the log into
    memory: the rows come from a server-side cursor (PostgreSQL) or SQLite's
    stepping cursor, ``batch`` at a time. They are plain rows (the columns of
    :class:`AuditLog`, by name), not ORM objects: nothing enters the session's
    identity map, and an export runs several times faster.
    """
    table = AuditLog.__table__
    query = select(table).order_by(table.c.id).execution_options(yield_per=batch)
    if since is not None:
        query = query.where(table.c.at >= since)
    if until is not None:
        query = query.where(table.c.at < until)
    if action:
        query = query.where(table.c.action == action)
    result = await session.stream(query)
    try:
        # By partition: iterating the result row by row costs one greenlet switch per row.
        async for rows in result.partitions(batch):
            for row in rows:
                yield row
    finally:
        await result.close()


async def count(session: AsyncSession, *, action: str | None = None) -> int:
    query = select(func.count()).select_from(AuditLog)
    if action:
        query = query.where(AuditLog.action == action)
    return int((await session.scalar(query)) or 0)


def to_json(row: AuditLog | Row[Any]) -> dict[str, Any]:
    """A row (an ORM object, or one of :func:`stream`'s) as JSON-ready values."""
    return {
        "id": row.id,
        "at": row.at.isoformat(),
        "action": row.action,
        "outcome": row.outcome,
        "actor": row.actor,
        "subject": row.subject,
        "client_ip": row.client_ip,
        "user_agent": row.user_agent,
        "details": row.details,
    }
