"""Coalesce concurrent fills of the same key into one.

When a hot key expires, every request that misses would otherwise run the
loader at once (a cache stampede) and hammer whatever the cache protects.
Here the first caller starts the fill and the others await the same task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Per-process, per-event-loop deduplication of concurrent async calls."""

    def __init__(self) -> None:
        self._flights: dict[str, asyncio.Task[T]] = {}

    def __len__(self) -> int:
        return len(self._flights)

    async def do(self, key: str, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` unless a call for ``key`` is already running; share its result.

        The shared task is shielded: a caller that is cancelled (say, its client
        went away) stops waiting, but the fill carries on for everyone else.
        An exception from ``fn`` reaches every waiter, and the next call retries.
        """
        task = self._flights.get(key)
        if task is None:
            task = asyncio.ensure_future(fn())
            self._flights[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        return await asyncio.shield(task)

    def _forget(self, key: str, task: asyncio.Task[T]) -> None:
        if self._flights.get(key) is task:
            del self._flights[key]
        if not task.cancelled():
            # Mark the exception as retrieved even when every waiter was cancelled.
            task.exception()
