"""Server-side sessions: a random token in the cookie, only its keyed hash in the database.

A stolen database therefore yields no usable session. Each sign-in issues a
new token (no fixation), and a session ends at whichever comes first: the
absolute lifetime, the idle timeout, sign-out, or the user's deactivation.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.db._models import User, UserSession
from bastion.db._types import utcnow

COOKIE_NAME = "bastion_session"
#: Over https: the __Host- prefix makes browsers refuse the cookie unless it is
#: Secure, host-only and Path=/, so a sibling subdomain cannot plant one.
SECURE_COOKIE_NAME = "__Host-bastion_session"

#: last_seen_at is refreshed at most this often, so reads stay reads.
TOUCH_INTERVAL = timedelta(seconds=60)


def hash_token(token: str, key: bytes) -> str:
    """HMAC-SHA256 under SECRET_KEY: even write access to the table cannot mint a session.

    With a plain hash, anyone able to insert a row could store the hash of a
    token they chose. Keyed, they also need the secret. Rotating SECRET_KEY
    therefore signs everyone out, as it does in Django.
    """
    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    max_age: timedelta
    idle_timeout: timedelta
    secret: bytes


class Sessions:
    def __init__(self, policy: SessionPolicy) -> None:
        self.policy = policy

    async def create(
        self, db: AsyncSession, user: User, ip: str | None, user_agent: str | None
    ) -> str:
        """A fresh session for ``user``; returns the token for the cookie (not stored)."""
        token = secrets.token_urlsafe(32)
        now = utcnow()
        db.add(
            UserSession(
                token_hash=hash_token(token, self.policy.secret),
                user_id=user.id,
                created_at=now,
                expires_at=now + self.policy.max_age,
                last_seen_at=now,
                ip=ip[:45] if ip else None,
                user_agent=user_agent[:256] if user_agent else None,
            )
        )
        await db.commit()
        return token

    async def resolve(self, db: AsyncSession, token: str) -> tuple[UserSession, User] | None:
        """The live session and its active user, or None (expired ones are deleted)."""
        if not token or len(token) > 128:
            return None
        row = (
            await db.execute(
                select(UserSession, User)
                .join(User, User.id == UserSession.user_id)
                .where(UserSession.token_hash == hash_token(token, self.policy.secret))
            )
        ).first()
        if row is None:
            return None
        session, user = row
        now = utcnow()
        if now >= session.expires_at or now - session.last_seen_at >= self.policy.idle_timeout:
            await db.delete(session)
            await db.commit()
            return None
        if not user.is_active:
            return None
        if now - session.last_seen_at >= TOUCH_INTERVAL:
            session.last_seen_at = now
            await db.commit()
        return session, user

    async def end_all(
        self, db: AsyncSession, user_id: int, *, keep: UserSession | None = None
    ) -> int:
        """End every session of ``user_id`` but ``keep``; returns how many ended.

        A password change keeps the session that made it (and gives it a new
        token, :meth:`rotate`); a reset by email keeps none.
        """
        statement = delete(UserSession).where(UserSession.user_id == user_id)
        if keep is not None:
            statement = statement.where(UserSession.id != keep.id)
        result = await db.execute(statement)
        await db.commit()
        return int(getattr(result, "rowcount", 0) or 0)

    async def rotate(self, db: AsyncSession, session: UserSession) -> str:
        """A new token for ``session`` (same row, same public id); the old cookie stops working."""
        token = secrets.token_urlsafe(32)
        session.token_hash = hash_token(token, self.policy.secret)
        session.last_seen_at = utcnow()
        await db.commit()
        return token

    async def live(self, db: AsyncSession, user_id: int) -> list[UserSession]:
        """The sessions of ``user_id`` still in force, newest first (the session list).

        Rows past their lifetime or idle timeout but not yet swept are left
        out: their cookies are already refused, so they are no longer "where
        you are signed in".
        """
        now = utcnow()
        rows = await db.scalars(
            select(UserSession)
            .where(
                UserSession.user_id == user_id,
                UserSession.expires_at > now,
                UserSession.last_seen_at > now - self.policy.idle_timeout,
            )
            .order_by(UserSession.created_at.desc(), UserSession.id.desc())
        )
        return list(rows.all())

    async def end_one(self, db: AsyncSession, user_id: int, public_id: str) -> bool:
        """End the session ``public_id`` if it is one of ``user_id``'s; True if it was.

        One statement with both conditions: another user's id and an id that
        never existed end nothing, and the caller cannot tell them apart.
        """
        if not public_id or len(public_id) > 64:
            return False
        result = await db.execute(
            delete(UserSession).where(
                UserSession.user_id == user_id, UserSession.public_id == public_id
            )
        )
        await db.commit()
        return bool(getattr(result, "rowcount", 0))

    async def end(self, db: AsyncSession, token: str) -> bool:
        """Delete the session on the server side; True if there was one."""
        result = await db.execute(
            delete(UserSession).where(
                UserSession.token_hash == hash_token(token, self.policy.secret)
            )
        )
        await db.commit()
        return bool(getattr(result, "rowcount", 0))


async def delete_expired(db: AsyncSession, idle_timeout: timedelta) -> int:
    """Delete every session past its lifetime or idle for ``idle_timeout``; returns how many.

    ``resolve`` deletes an expired session only when its cookie comes back;
    a browser that never returns would leave its row forever. The periodic
    job ``bastion.sessions.clean`` calls this.
    """
    now = utcnow()
    result = await db.execute(
        delete(UserSession).where(
            (UserSession.expires_at <= now) | (UserSession.last_seen_at <= now - idle_timeout)
        )
    )
    await db.commit()
    return int(getattr(result, "rowcount", 0) or 0)
