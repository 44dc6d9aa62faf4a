"""Backup codes: ten single-use codes for the day the authenticator is lost.

Each code is 10 characters from a 31-character alphabet without look-alikes
(no ``0/o``, ``1/l/i``): about 49.5 bits, shown grouped as ``abcde-fghij``
and accepted with or without the dash, in either case. Only an HMAC of the
normalised code is stored (under ``SECRET_KEY``, as session tokens are), so
a database dump holds none of them; rotating ``SECRET_KEY`` makes them all
unusable. A code is spent by one conditional UPDATE (``... WHERE used_at IS
NULL``): of two requests that race with the same code, one wins.
"""

from __future__ import annotations

import secrets

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.auth._sessions import hash_token
from bastion.db._models import BackupCode
from bastion.db._types import utcnow

ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
LENGTH = 10
COUNT = 10
#: Longer than any code typed with spaces and dashes; more is bad input.
MAX_BACKUP_CODE = 64
#: The method name of a sign-in completed with a backup code (audit details, metrics label).
BACKUP_CODE = "backup_code"


def new_code() -> str:
    """One code as shown: ``abcde-fghij``."""
    raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return f"{raw[:5]}-{raw[5:]}"


def normalise(code: str) -> str | None:
    """The code without dashes and spaces, lowercased; None if it cannot be one of ours."""
    raw = "".join(code.replace("-", " ").split()).lower()
    if len(raw) != LENGTH or any(char not in ALPHABET for char in raw):
        return None
    return raw


class BackupCodes:
    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def _hash(self, normalised: str) -> str:
        return hash_token("backup-code:" + normalised, self.secret)

    async def replace(self, db: AsyncSession, user_id: int) -> list[str]:
        """Delete the user's codes and store ten new ones (not committed); returns them."""
        await self.remove(db, user_id)
        codes = [new_code() for _ in range(COUNT)]
        now = utcnow()
        db.add_all(
            BackupCode(user_id=user_id, code_hash=self._hash(code.replace("-", "")), created_at=now)
            for code in codes
        )
        return codes

    async def remove(self, db: AsyncSession, user_id: int) -> None:
        """Delete the user's codes, used or not (not committed)."""
        await db.execute(delete(BackupCode).where(BackupCode.user_id == user_id))

    async def use(self, db: AsyncSession, user_id: int, code: str) -> bool:
        """Spend ``code`` if it is one of the user's unused codes (not committed)."""
        normalised = normalise(code) if len(code) <= MAX_BACKUP_CODE else None
        if normalised is None:
            return False
        result = await db.execute(
            update(BackupCode)
            .where(
                BackupCode.user_id == user_id,
                BackupCode.code_hash == self._hash(normalised),
                BackupCode.used_at.is_(None),
            )
            .values(used_at=utcnow())
        )
        return bool(getattr(result, "rowcount", 0))

    async def left(self, db: AsyncSession, user_id: int) -> int:
        """How many of the user's codes are still unused."""
        found = await db.scalar(
            select(func.count())
            .select_from(BackupCode)
            .where(BackupCode.user_id == user_id, BackupCode.used_at.is_(None))
        )
        return int(found or 0)
