"""Password hashing with argon2id (argon2-cffi), off the event loop.

Hashing is deliberately slow (tens of milliseconds and 64 MiB), so it runs
in a worker thread: one sign-in must not stall every other request on the
loop. An unknown email is checked against a dummy hash made with the same
parameters, so "no such user" and "wrong password" take the same time.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MAX_PASSWORD = 1024  # argon2 takes any length; a cap stops multi-megabyte hashing requests


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    needs_rehash: bool = False


class Passwords:
    """argon2id with argon2-cffi's current defaults (RFC 9106 low-memory profile)."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher()
        self._dummy = self.hasher.hash("bastion-dummy-password-for-timing")

    @classmethod
    def for_profile(cls, profile: str) -> Passwords:
        """New hashes with argon2-cffi's named profile (``PASSWORD_HASH_PROFILE``).

        A stored hash carries its own parameters, so it verifies under any
        profile; one made under another is rehashed at its next sign-in
        (``needs_rehash``), which is how a move back to the default heals.
        """
        return cls(PasswordHasher.from_parameters(getattr(profiles, profile.upper())))

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> Verification:
        """Check ``password``; with ``stored_hash`` None, burn the same time and fail."""
        return await asyncio.to_thread(self._verify, stored_hash, password)

    def _verify(self, stored_hash: str | None, password: str) -> Verification:
        target = stored_hash if stored_hash is not None else self._dummy
        try:
            self.hasher.verify(target, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return Verification(False)
        if stored_hash is None:
            return Verification(False)
        return Verification(True, self.hasher.check_needs_rehash(stored_hash))
