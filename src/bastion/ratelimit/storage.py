"""Where counts live: Valkey through ``limits``' RedisStorage, or this process's memory.

The Valkey client is made lazily and per event loop, as the cache's is: an app
whose Valkey is down still starts, and a loop change (a test runner that makes
one loop per test) gets a fresh client instead of one bound to a dead loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import cast

import valkey.asyncio as valkey_asyncio
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.storage.redis.redispy import RedispyBridge
from limits.aio.strategies import MovingWindowRateLimiter
from valkey.asyncio.retry import Retry
from valkey.backoff import NoBackoff

from bastion.cache.connection import ValkeyOptions

__all__ = ["LocalBackend", "ValkeyBackend", "storage_uri"]

logger = logging.getLogger("bastion.ratelimit")

#: Settings' URL schemes -> limits' schemes that select the valkey-py client.
_SCHEMES = {
    "redis": "async+valkey",
    "valkey": "async+valkey",
    "rediss": "async+valkeys",
    "valkeys": "async+valkeys",
    "unix": "async+valkey+unix",
}


def storage_uri(url: str) -> str:
    """``redis://h:6379/2`` -> ``async+valkey://h:6379/2``: only the scheme changes.

    Keeping the rest verbatim keeps the db number, credentials and query
    options. The ``async+valkey`` family makes limits use valkey-py's asyncio
    client, the one bastion already depends on.
    """
    scheme, sep, rest = url.partition("://")
    target = _SCHEMES.get(scheme.lower())
    if not sep or target is None:
        raise ValueError(f"expected a redis://, valkey:// or unix:// URL, got {url!r}")
    return f"{target}://{rest}"


class LocalBackend:
    """The in-process moving window: the store without Valkey, and the fallback with it."""

    def __init__(self) -> None:
        self.storage = MemoryStorage()
        self.strategy = MovingWindowRateLimiter(self.storage)

    async def aclose(self) -> None:
        """Stop limits' background expiry task, so no task outlives its loop."""
        timer = self.storage.timer
        self.storage.timer = None
        # A task of another (perhaps closed) loop can be neither cancelled nor awaited here.
        if timer is None or timer.done() or timer.get_loop() is not asyncio.get_running_loop():
            return
        timer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await timer


class ValkeyBackend:
    """A RedisStorage on Valkey with explicit timeouts and no client-side retries.

    Retries are off because the caller's deadline and breaker are the retry
    policy: a retry inside valkey-py would only spend the deadline twice.
    """

    def __init__(self, options: ValkeyOptions, key_prefix: str) -> None:
        self.options = options
        self.uri = storage_uri(options.url)
        self.key_prefix = key_prefix
        self._storage: RedisStorage | None = None
        self._strategy: MovingWindowRateLimiter | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _client_options(self) -> dict[str, float | str | bool]:
        options: dict[str, object] = {
            # No socket timeout: the limiter bounds each whole decision with one
            # deadline, so valkey-py's per-send asyncio.wait_for (a task each)
            # and per-read timers would only repeat it, on every command.
            "socket_timeout": None,
            "socket_connect_timeout": self.options.connect_timeout,
            "retry_on_timeout": False,
            "retry": Retry(NoBackoff(), 0),
            "health_check_interval": 0,
        }
        # RedisStorage forwards **options to valkey-py unchanged; its annotation
        # only admits scalars, while valkey-py wants a Retry object for `retry`.
        return cast("dict[str, float | str | bool]", options)

    def strategy(self) -> MovingWindowRateLimiter:
        """The limiter bound to the running loop; creating it opens no socket."""
        loop = asyncio.get_running_loop()
        if self._strategy is None or self._loop is not loop:
            self._storage = RedisStorage(
                self.uri,
                wrap_exceptions=False,
                implementation="valkey",
                key_prefix=self.key_prefix,
                **self._client_options(),
            )
            self._strategy = MovingWindowRateLimiter(self._storage)
            self._loop = loop
        return self._strategy

    async def aclose(self) -> None:
        """Close the client if it belongs to the running loop; forget it either way."""
        storage, loop = self._storage, self._loop
        self._storage = self._strategy = self._loop = None
        if storage is None or loop is not asyncio.get_running_loop():
            return
        bridge = storage.bridge
        if isinstance(bridge, RedispyBridge):  # ValkeyBridge is one
            client = cast("valkey_asyncio.Valkey", bridge.get_connection())
            try:
                await client.aclose()
            except Exception:
                logger.debug("rate-limit client close failed", exc_info=True)
