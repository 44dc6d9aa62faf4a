"""Refused sign-in attempts, counted in memory and written as one audit row per client and account.

A flood of refused attempts must cost the app almost nothing, so a refusal
is never a database transaction. Yet the audit log must keep the facts. Each
refusal is added to an in-memory tally keyed by (client key, account): the
client key is the IP as the limiter counts it (an IPv6 address by its /64).
Every ``interval`` seconds, and at shutdown, the tallies are written in one
transaction as ``auth.sign_in.blocked`` rows::

    details = {"count": 2417, "first_at": "...", "last_at": "...",
               "client_key": "203.0.113.7", "scope": "ip", "limit": 10}

So one row stands for one client key, one account and one flush window, and
the ``count`` of all these rows add up exactly to the refusals answered: a
failed write (the database is down) keeps the tallies for the next flush.
What a ``kill -9`` can lose is the last window: at most ``interval`` seconds
of counts (5 s by default). Memory is bounded by ``max_keys`` distinct pairs
per window; past that, refusals are still counted exactly, in one row whose
client key and account are ``*``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime

from bastion.audit._log import SIGN_IN_BLOCKED, AuditEntry, Outcome, record_many
from bastion.db import DATABASE_ERRORS, Database
from bastion.db._types import utcnow
from bastion.hardening._proxy import client_key

logger = logging.getLogger("bastion.audit")

#: The pair that takes refusals once ``max_keys`` pairs are being tallied.
OVERFLOW = ("*", "*")


@dataclass(slots=True)
class _Tally:
    count: int
    first_at: datetime
    last_at: datetime
    client_ip: str | None
    user_agent: str | None
    scope: str | None
    limit: int


class BlockedAttempts:
    """Tallies refusals; a background task writes them every ``interval`` seconds.

    The task starts with the first refusal (so nothing runs in an app that is
    never attacked) and :meth:`aclose` stops it after a last flush: call it at
    shutdown, before the database is disposed.
    """

    def __init__(
        self, database: Database, *, interval: float = 5.0, max_keys: int = 50_000
    ) -> None:
        self.database = database
        self.interval = interval
        self.max_keys = max_keys
        self._tallies: dict[tuple[str, str], _Tally] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._failing = False

    @property
    def pending(self) -> int:
        """Refusals counted and not yet written."""
        return sum(tally.count for tally in self._tallies.values())

    def add(
        self,
        client_ip: str | None,
        account: str,
        *,
        user_agent: str | None = None,
        scope: str | None = None,
        limit: int = 0,
    ) -> None:
        """Count one refusal of ``account`` (the normalised email) for ``client_ip``."""
        now = utcnow()
        key = (client_key(client_ip) if client_ip else "unknown", account)
        tally = self._tallies.get(key)
        if tally is None:
            if len(self._tallies) >= self.max_keys:
                key = OVERFLOW
                tally = self._tallies.get(key)
            if tally is None:
                self._tallies[key] = _Tally(1, now, now, client_ip, user_agent, scope, limit)
                self._ensure_task()
                return
        tally.count += 1
        tally.last_at = now
        tally.scope = scope
        tally.limit = limit

    def _ensure_task(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception:  # a bug, not an outage: say so, keep the counts, keep flushing
                logger.exception("audit: flushing blocked sign-in counts failed")

    async def flush(self) -> int:
        """Write what was tallied; returns the refusals written (0 if the write failed)."""
        async with self._lock:
            tallies, self._tallies = self._tallies, {}
            if not tallies:
                return 0
            entries = [_entry(key, tally) for key, tally in tallies.items()]
            try:
                async with self.database.session() as db:
                    await record_many(db, entries)
            except DATABASE_ERRORS as exc:
                self._keep(tallies)
                if not self._failing:
                    self._failing = True
                    logger.warning(
                        "audit: could not write blocked sign-in counts (%s); keeping them "
                        "for the next flush",
                        type(exc).__name__,
                    )
                return 0
            except BaseException:
                self._keep(tallies)
                raise
            if self._failing:
                self._failing = False
                logger.info("audit: blocked sign-in counts are written again")
            return sum(tally.count for tally in tallies.values())

    def _keep(self, unwritten: dict[tuple[str, str], _Tally]) -> None:
        """Fold tallies that could not be written back into the current ones."""
        for key, old in unwritten.items():
            new = self._tallies.get(key)
            if new is None:
                self._tallies[key] = old
            else:
                new.count += old.count
                new.first_at = old.first_at

    async def aclose(self) -> None:
        """Stop the flusher and write the last tallies."""
        task, self._task = self._task, None
        if task is not None and task.get_loop() is asyncio.get_running_loop():
            async with self._lock:  # never cancel a flush half-way through its write
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.flush()


def _entry(key: tuple[str, str], tally: _Tally) -> AuditEntry:
    client, account = key
    return AuditEntry(
        SIGN_IN_BLOCKED,
        Outcome.BLOCKED,
        subject=account,
        client_ip=tally.client_ip if key != OVERFLOW else None,
        user_agent=tally.user_agent if key != OVERFLOW else None,
        details={
            "count": tally.count,
            "first_at": tally.first_at.isoformat(),
            "last_at": tally.last_at.isoformat(),
            "client_key": client,
            "scope": tally.scope,
            "limit": tally.limit,
        },
    )
