"""How late the event loop runs: the wait every request on this process pays before its turn.

When a Valkey call, a database query or a whole request is slow, the first
question is whether the dependency was slow or the process was: a saturated
loop (too many requests per worker, a CPU-bound handler, a GC pause, a
descheduled container) delays every callback by the same amount, and from
the inside that looks exactly like a slow dependency. The monitor answers it
the direct way: it asks to be woken every ``interval`` seconds and measures
how late the wake-up came. That lateness is the loop lag; it is exported as
``bastion_event_loop_lag_seconds``.

One timer every 100 ms costs nothing measurable. The monitor runs as a task
of the loop it measures: start it in the app's lifespan, stop it at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable


class LoopLagMonitor:
    """Samples the running loop's lag; ``on_sample`` hears each sample in seconds."""

    def __init__(
        self, on_sample: Callable[[float], None] | None = None, *, interval: float = 0.1
    ) -> None:
        self.on_sample = on_sample
        self.interval = interval
        #: The latest sample and the largest since the monitor started, in seconds.
        self.last = 0.0
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start sampling on the running loop (a no-op if already running)."""
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(self.interval)
            # Timers may fire a hair early (clock granularity): that is no lag.
            lag = max(0.0, loop.time() - asked - self.interval)
            self.last = lag
            self.worst = max(self.worst, lag)
            if self.on_sample is not None:
                self.on_sample(lag)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and task.get_loop() is asyncio.get_running_loop():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
