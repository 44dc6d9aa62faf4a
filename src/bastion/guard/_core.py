"""The sign-in envelope as one object: count the attempt, refuse it cheaply, audit the outcome.

Every login endpoint needs the same four things, whoever wrote it: count
each attempt against the per-IP and per-account limits *before* the password
is checked, answer a refusal without touching the database, write each
failed attempt with the client IP the trusted-proxy resolver saw, and write
the success. :class:`SignInGuard` does them; bastion's own accounts
(:class:`bastion.auth.AuthService`) and the ASGI guard for routes you cannot
edit (:class:`bastion.guard.LoginGuard`) both call it, so both count and
audit the same way.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bastion.audit import (
    SIGN_IN_FAILED,
    SIGN_IN_RATE_LIMITED,
    SIGN_IN_SUCCEEDED,
    AuditEntry,
    Outcome,
    record,
)
from bastion.audit._blocked import BlockedAttempts
from bastion.db import Database
from bastion.ratelimit import Decision, SignInLimiter
from bastion.responses import Refusal

logger = logging.getLogger("bastion.guard")

#: What a refused sign-in is told, whoever answers it (bastion's accounts or the guard).
TOO_MANY_SIGN_INS = "too many sign-in attempts; try again later"


class FailReason(enum.Enum):
    """Why a sign-in failed: one name for the audit row, the metrics label and the refusal.

    The value is the audit row's ``reason`` and the ``reason`` label of
    ``bastion_sign_in_failures_total``; the name is the stable reason a
    refused client reads (``RATE_LIMITED``).
    """

    UNKNOWN_USER = "unknown_user"
    BAD_PASSWORD = "bad_password"  # noqa: S105 - a reason code, not a password
    DEACTIVATED = "deactivated"
    #: A login handler bastion did not write said no (see :class:`bastion.guard.LoginGuard`).
    REJECTED_BY_APP = "rejected_by_app"
    #: Refused by the limiter before the password was checked.
    RATE_LIMITED = "rate_limited"


def rate_limited(decision: Decision, detail: str = TOO_MANY_SIGN_INS) -> Refusal:
    """The 429 for an attempt the limiter refused (send it with ``rate_limit_headers``)."""
    hint = f"wait {decision.reset_after} seconds, then try again"
    return Refusal(429, "Too Many Requests", FailReason.RATE_LIMITED.name, detail, hint)


@dataclass(frozen=True, slots=True)
class Client:
    """Who is asking: the client IP as the trusted-proxy resolver saw it, and the user agent."""

    ip: str | None
    user_agent: str | None


class SignInGuard:
    """Rate limit and audit trail for sign-ins, on one limiter and one database.

    ``on_failure`` hears the reason (a :class:`FailReason` value) of every
    failed attempt, refusals included (``"rate_limited"``): a metrics hook. Call :meth:`aclose` at
    shutdown, before the database is disposed, so the last tallies of
    refused attempts are written.
    """

    def __init__(
        self,
        limiter: SignInLimiter,
        database: Database,
        *,
        blocked: BlockedAttempts | None = None,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        self.limiter = limiter
        self.database = database
        self.blocked = blocked or BlockedAttempts(database)
        self.on_failure = on_failure

    async def attempt(self, client: Client, account: str) -> Decision:
        """Count one attempt of ``account`` (normalised) from ``client``; decide it.

        A refusal is tallied in memory (no database work) and the caller
        answers 429 (:func:`rate_limited`) with
        :func:`bastion.ratelimit.rate_limit_headers`. An allowed attempt
        that used the last slot of a limit is audited as ``tripped``.
        """
        decision = await self.limiter.hit(client.ip or "unknown", account)
        if not decision.allowed:
            self.blocked.add(
                client.ip,
                account,
                user_agent=client.user_agent,
                scope=decision.scope,
                limit=decision.limit,
            )
            self._failure(FailReason.RATE_LIMITED)
        return decision

    async def tripped(
        self, db: AsyncSession, client: Client, account: str, decision: Decision
    ) -> None:
        """Audit that this allowed attempt used a limit's last slot (when ``remaining == 0``)."""
        await record(
            db,
            AuditEntry(
                SIGN_IN_RATE_LIMITED,
                Outcome.TRIPPED,
                subject=account,
                client_ip=client.ip,
                user_agent=client.user_agent,
                details={"limit": decision.limit, "reset_after": decision.reset_after},
            ),
        )

    async def failed(
        self,
        client: Client,
        account: str,
        reason: FailReason,
        decision: Decision,
        *,
        db: AsyncSession | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Audit one attempt that reached the password check and failed, with ``reason``.

        ``details`` add to the row's (a password change says ``"during":
        "password_change"``: a wrong current password is a failed sign-in
        for the limit, the metrics and the alerts, and the row says where).
        """
        self._failure(reason)
        row: dict[str, Any] = {**(details or {}), "reason": reason.value}
        if decision.degraded:
            row["limiter"] = "local-fallback"
        entry = AuditEntry(
            SIGN_IN_FAILED,
            Outcome.FAILURE,
            subject=account,
            client_ip=client.ip,
            user_agent=client.user_agent,
            details=row,
        )
        await self._record(entry, db)

    async def succeeded(
        self,
        client: Client,
        account: str,
        *,
        actor: str | None = None,
        details: Mapping[str, Any] | None = None,
        db: AsyncSession | None = None,
    ) -> None:
        """Audit a successful sign-in of ``account`` (``actor``: who it turned out to be)."""
        entry = AuditEntry(
            SIGN_IN_SUCCEEDED,
            Outcome.SUCCESS,
            subject=account,
            actor=actor or account,
            client_ip=client.ip,
            user_agent=client.user_agent,
            details=dict(details or {}),
        )
        await self._record(entry, db)

    async def _record(self, entry: AuditEntry, db: AsyncSession | None) -> None:
        if db is not None:
            await record(db, entry)
            return
        async with self.database.session() as own:
            await record(own, entry)

    def _failure(self, reason: FailReason) -> None:
        if self.on_failure is not None:
            self.on_failure(reason.value)

    async def aclose(self) -> None:
        """Write the last tallies of refused attempts."""
        await self.blocked.aclose()
