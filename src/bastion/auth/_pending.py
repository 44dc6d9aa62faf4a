"""Pending sign-ins: a right password that still owes its second factor.

A pending sign-in is deliberately not a session. Its cookie has its own name
(``bastion_pending``), its token is stored only as an HMAC in its own table,
and nothing that needs a session reads it: with it alone, ``GET
/api/auth/session`` answers as for an anonymous visitor. It lives five minutes
and dies at the fifth wrong code; completing it deletes it, in one
conditional DELETE, so one pending sign-in yields at most one session even
when two instances race to complete it.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.auth._sessions import hash_token
from bastion.db._models import Passkey, PendingSignIn, TotpSecret, User
from bastion.db._types import utcnow

PENDING_COOKIE = "bastion_pending"
#: Over https, as the session cookie: Secure, host-only, Path=/.
SECURE_PENDING_COOKIE = "__Host-bastion_pending"
PENDING_TTL = timedelta(minutes=5)
#: Wrong codes a pending sign-in survives; the next one ends it.
MAX_FAILURES = 5

#: The second factors, as ``{"second_factor": "required", "methods": [...]}`` names them.
TOTP = "totp"
PASSKEY = "passkey"


async def second_factor_methods(db: AsyncSession, user_id: int) -> list[str]:
    """The second factors ``user_id`` has turned on, in a stable order (empty: none)."""
    methods: list[str] = []
    totp = select(TotpSecret.user_id).where(
        TotpSecret.user_id == user_id, TotpSecret.confirmed_at.is_not(None)
    )
    if await db.scalar(select(exists(totp))):
        methods.append(TOTP)
    if await db.scalar(select(exists(select(Passkey.id).where(Passkey.user_id == user_id)))):
        methods.append(PASSKEY)
    return methods


class PendingSignIns:
    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    async def create(self, db: AsyncSession, user: User) -> str:
        """A pending sign-in for ``user``; returns the token for its cookie (not stored)."""
        token = secrets.token_urlsafe(32)
        now = utcnow()
        db.add(
            PendingSignIn(
                token_hash=hash_token(token, self.secret),
                user_id=user.id,
                created_at=now,
                expires_at=now + PENDING_TTL,
                failures=0,
            )
        )
        await db.commit()
        return token

    async def resolve(
        self, db: AsyncSession, token: str | None
    ) -> tuple[PendingSignIn, User] | None:
        """The live pending sign-in a cookie names and its active user, or None."""
        if not token or len(token) > 128:
            return None
        row = (
            await db.execute(
                select(PendingSignIn, User)
                .join(User, User.id == PendingSignIn.user_id)
                .where(PendingSignIn.token_hash == hash_token(token, self.secret))
            )
        ).first()
        if row is None:
            return None
        pending, user = row
        if utcnow() >= pending.expires_at or pending.failures >= MAX_FAILURES:
            await db.delete(pending)
            await db.commit()
            return None
        if not user.is_active:
            return None
        return pending, user

    async def fail(self, db: AsyncSession, pending: PendingSignIn) -> bool:
        """Count one wrong code; True when that was the last one allowed (it is gone).

        Also True when it was already gone (completed or ended by a request
        that raced this one): there is nothing left to fail.
        """
        result = await db.execute(
            update(PendingSignIn)
            .where(PendingSignIn.id == pending.id)
            .values(failures=PendingSignIn.failures + 1)
        )
        await db.commit()
        if not getattr(result, "rowcount", 0):
            return True
        await db.refresh(pending)
        if pending.failures < MAX_FAILURES:
            return False
        await db.execute(delete(PendingSignIn).where(PendingSignIn.id == pending.id))
        await db.commit()
        return True

    async def consume(self, db: AsyncSession, pending: PendingSignIn) -> bool:
        """End ``pending`` because it is complete; False when another request already did."""
        result = await db.execute(delete(PendingSignIn).where(PendingSignIn.id == pending.id))
        await db.commit()
        return bool(getattr(result, "rowcount", 0))
