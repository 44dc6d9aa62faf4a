"""The JSON cache: get, set with TTL, delete, TTL, and a stampede-safe get_or_set.

Every operation answers "absent" when the cache is disabled, unreachable, hung
or behind an open breaker: callers write one code path, the miss path, and a
Valkey outage makes the app slower, never broken.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeAlias, TypeVar, cast

from bastion.cache._connection import FAILED, ValkeyConnection
from bastion.cache._singleflight import SingleFlight

if TYPE_CHECKING:
    from bastion.cache._clients import Client

logger = logging.getLogger("bastion.cache")

JSON: TypeAlias = dict[str, "JSON"] | list["JSON"] | str | int | float | bool | None

T = TypeVar("T")


def _encode(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


class JsonCache:
    """JSON values under a key prefix. ``connection`` is None when the cache is disabled."""

    def __init__(
        self,
        connection: ValkeyConnection | None,
        prefix: str,
        on_read: Callable[[bool], None] | None = None,
    ) -> None:
        self._connection = connection
        self.prefix = prefix
        self.on_read = on_read  # called with True for a hit, False for a miss
        self._flights: SingleFlight[object] = SingleFlight()

    @property
    def enabled(self) -> bool:
        return self._connection is not None

    async def get(self, key: str) -> JSON | None:
        """The stored value, or None on a miss, when disabled, or on any error.

        A stored JSON ``null`` reads as a miss too, as in the seed's contract.
        A value that is not valid JSON (written by something else) is logged
        and treated as a miss rather than handed to the caller half-decoded.
        """
        if self._connection is None:
            return None
        full = self.prefix + key
        raw = await self._connection.call("get", lambda c: c.get(full))
        return self._count(None if raw is FAILED else self._decode(key, raw))

    def _count(self, value: JSON | None) -> JSON | None:
        if self.on_read is not None:
            self.on_read(value is not None)
        return value

    async def get_with_ttl(self, key: str) -> tuple[JSON | None, int | None]:
        """Value and remaining TTL in one round trip, so a hung server costs one timeout."""
        if self._connection is None:
            return None, None
        full = self.prefix + key

        async def both(client: Client) -> list[object]:
            pipe = client.pipeline(transaction=False)
            pipe.get(full)
            pipe.ttl(full)
            replies: list[object] = await pipe.execute()
            return replies

        replies = await self._connection.call("get_ttl", both)
        if replies is FAILED or len(replies) != 2:
            self._count(None)
            return None, None
        value = self._count(self._decode(key, replies[0]))
        left = replies[1]
        ttl = left if value is not None and isinstance(left, int) and left >= 0 else None
        return value, ttl

    def _decode(self, key: str, raw: object) -> JSON | None:
        if not isinstance(raw, bytes | str):
            return None
        try:
            value: JSON = json.loads(raw)
        except ValueError:
            logger.warning("cache value for %r is not JSON; treating it as a miss", key)
            return None
        return value

    async def set(self, key: str, value: object, ttl_seconds: int) -> bool:
        """Store ``value`` as JSON for ``ttl_seconds``. Returns whether it was stored.

        A value that cannot be serialised is a bug in the caller, so it is
        logged as an error, but it still never fails the request.
        """
        if self._connection is None:
            return False
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be a positive number of seconds")
        try:
            payload = _encode(value)
        except (TypeError, ValueError):
            logger.error("cache value for %r is not JSON-serialisable; not stored", key)
            return False
        full = self.prefix + key
        done = await self._connection.call("set", lambda c: c.set(full, payload, ex=ttl_seconds))
        return done is not FAILED and bool(done)

    async def delete(self, key: str) -> bool:
        """Remove ``key``. Returns whether the call reached Valkey."""
        if self._connection is None:
            return False
        full = self.prefix + key
        return await self._connection.call("delete", lambda c: c.delete(full)) is not FAILED

    async def ttl(self, key: str) -> int | None:
        """Seconds left, or None if the key is missing, has no TTL, or the cache is off."""
        if self._connection is None:
            return None
        full = self.prefix + key
        left = await self._connection.call("ttl", lambda c: c.ttl(full))
        if left is FAILED or not isinstance(left, int) or left < 0:
            return None
        return left

    async def get_or_set(
        self, key: str, ttl_seconds: int, loader: Callable[[], Awaitable[T]]
    ) -> T | JSON:
        """Return the cached value, or run ``loader`` once, store and return its result.

        Concurrent callers for the same key share one read and one loader call,
        so an expiring hot key costs the backend one load, not one per request.
        On a hit the value comes back decoded from JSON (a tuple comes back as a
        list). An exception from the loader reaches every waiting caller and is
        not cached.
        """

        async def fill() -> object:
            cached = await self.get(key)
            if cached is not None:
                return cached
            value = await loader()
            await self.set(key, value, ttl_seconds)
            return value

        return cast("T | JSON", await self._flights.do(key, fill))

    async def aclose(self) -> None:
        if self._connection is not None:
            await self._connection.aclose()
