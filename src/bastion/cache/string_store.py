"""Plain string values with expiry: the shared store for counters and rate limits.

Kept apart from the JSON cache because its callers count things across
instances, where the value must be the exact string Valkey holds and an
increment must be atomic. Failures still answer None rather than raise; the
caller (the rate limiter) decides what a missing answer means.
"""

from __future__ import annotations

import valkey.asyncio as valkey_asyncio

from bastion.cache.connection import FAILED, ValkeyConnection

__all__ = ["StringStore"]


class StringStore:
    """Strings under their own key prefix. ``connection`` is None when disabled."""

    def __init__(self, connection: ValkeyConnection | None, prefix: str) -> None:
        self._connection = connection
        self.prefix = prefix

    @property
    def enabled(self) -> bool:
        return self._connection is not None

    async def get(self, key: str) -> str | None:
        if self._connection is None:
            return None
        full = self.prefix + key
        raw = await self._connection.call("str_get", lambda c: c.get(full))
        if raw is FAILED or raw is None:
            return None
        return bytes(raw).decode("utf-8", errors="replace")

    async def set(self, key: str, value: str, ttl_seconds: int) -> bool:
        if self._connection is None:
            return False
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be a positive number of seconds")
        full = self.prefix + key
        done = await self._connection.call(
            "str_set", lambda c: c.set(full, value.encode(), ex=ttl_seconds)
        )
        return done is not FAILED and bool(done)

    async def delete(self, key: str) -> bool:
        if self._connection is None:
            return False
        full = self.prefix + key
        return await self._connection.call("str_delete", lambda c: c.delete(full)) is not FAILED

    async def incr(self, key: str, expiry_seconds: int) -> int | None:
        """Add one and return the new count; the first increment starts the expiry.

        INCR and ``EXPIRE .. NX`` run in one MULTI/EXEC, so two instances that
        count at once never lose an increment and the window never gets stuck
        without an expiry. None when the store is disabled or unreachable.
        """
        if self._connection is None:
            return None
        if expiry_seconds <= 0:
            raise ValueError("expiry_seconds must be a positive number of seconds")
        full = self.prefix + key

        async def transaction(client: valkey_asyncio.Valkey) -> list[object]:
            pipe = client.pipeline(transaction=True)
            pipe.incr(full)
            pipe.expire(full, expiry_seconds, nx=True)
            result: list[object] = await pipe.execute()
            return result

        replies = await self._connection.call("str_incr", transaction)
        if replies is FAILED or not isinstance(replies, list) or not replies:
            return None
        count = replies[0]
        return count if isinstance(count, int) else None
