"""bastion.cache: Valkey behind a small JSON API.

It does nothing when ``VALKEY_URL`` is unset, and any failure (down, refused,
hung, breaker open) reads as a miss within the configured timeout. A request
never fails because of the cache.

The module-level functions use one process-wide :class:`Cache` built from
:func:`bastion.config.get_settings`; call :func:`close_cache` at shutdown.
Code that wants its own instance (tests, a second Valkey) builds a ``Cache``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from bastion.cache._breaker import BreakerState
from bastion.cache._connection import ValkeyConnection, ValkeyOptions
from bastion.cache._json_store import JSON, JsonCache
from bastion.config import Settings, get_settings

__all__ = [
    "JSON",
    "BreakerState",
    "Cache",
    "ValkeyOptions",
    "cache_delete",
    "cache_get",
    "cache_set",
    "cache_ttl",
    "close_cache",
    "get_cache",
    "get_or_set",
    "is_cache_enabled",
    "set_cache",
]

T = TypeVar("T")


class Cache:
    """The JSON cache on one Valkey connection (its client, deadline and breaker).

    ``options`` None means disabled: every read is a miss, every write a no-op,
    and no socket is ever opened.
    """

    def __init__(
        self,
        options: ValkeyOptions | None,
        prefix: str = "bastion:",
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        """``on_event`` hears "hit", "miss" (JSON reads) and "error" (any failed call)."""

        def on_error() -> None:
            if on_event is not None:
                on_event("error")

        def on_read(hit: bool) -> None:
            if on_event is not None:
                on_event("hit" if hit else "miss")

        self.connection = ValkeyConnection(options, on_error) if options is not None else None
        self.json = JsonCache(self.connection, prefix, on_read if on_event else None)

    @classmethod
    def from_settings(
        cls, settings: Settings, on_event: Callable[[str], None] | None = None
    ) -> Cache:
        options = ValkeyOptions.from_settings(settings)
        return cls(options, settings.CACHE_KEY_PREFIX, on_event)

    @property
    def enabled(self) -> bool:
        return self.connection is not None

    @property
    def breaker_state(self) -> BreakerState | None:
        return self.connection.state if self.connection is not None else None

    async def aclose(self) -> None:
        await self.json.aclose()


_default: Cache | None = None


def get_cache() -> Cache:
    """The process-wide cache, created from the settings on first use."""
    global _default  # noqa: PLW0603 - one client per process is the contract
    if _default is None:
        _default = Cache.from_settings(get_settings())
    return _default


def set_cache(cache: Cache | None) -> None:
    """Install ``cache`` as the process-wide one (an app factory with explicit settings)."""
    global _default  # noqa: PLW0603
    _default = cache


async def close_cache() -> None:
    """Close the process-wide client; the next call creates a new one."""
    global _default
    cache, _default = _default, None
    if cache is not None:
        await cache.aclose()


def is_cache_enabled() -> bool:
    """True exactly when ``VALKEY_URL`` is set."""
    return get_cache().enabled


async def cache_get(key: str) -> JSON | None:
    """Read a JSON value. Misses, a disabled cache and errors all return None."""
    return await get_cache().json.get(key)


async def cache_set(key: str, value: object, ttl_seconds: int) -> None:
    """Write a JSON value with a TTL. A no-op when disabled or unreachable."""
    await get_cache().json.set(key, value, ttl_seconds)


async def cache_delete(key: str) -> None:
    """Delete a key. A no-op when disabled or unreachable."""
    await get_cache().json.delete(key)


async def cache_ttl(key: str) -> int | None:
    """Remaining TTL in seconds, or None when missing, without TTL, or disabled."""
    return await get_cache().json.ttl(key)


async def get_or_set(key: str, ttl_seconds: int, loader: Callable[[], Awaitable[T]]) -> T | JSON:
    """Cached value, or the loader's result stored for ``ttl_seconds``; single-flight."""
    return await get_cache().json.get_or_set(key, ttl_seconds, loader)
