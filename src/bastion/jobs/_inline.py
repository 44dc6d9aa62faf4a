"""Jobs in the app's own event loop: the backend without ``JOBS_ENABLED``.

A job runs on its own asyncio task, after the response of the request that
deferred it has been sent (:class:`AfterResponse`); a failure is retried by
the rule a worker applies (:meth:`~bastion.jobs.Task.retry_in`), then logged
and counted by :func:`~bastion.jobs._runner.run_attempt`, and never reaches the
request. Periodic tasks run on a timer, at the instants procrastinate's cron
would fire. Everything lives in memory: it dies with the process, which is why
``bastion check --deploy`` warns about inline jobs in production (W061).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Receive, Scope, Send

from bastion.jobs._info import JobInfo, JobStatus
from bastion.jobs._runner import run_attempt
from bastion.jobs._schedule import seconds_until_next
from bastion.jobs._tasks import Task

if TYPE_CHECKING:
    from bastion.config import Settings
    from bastion.db import Database
    from bastion.jobs._metrics import JobMetrics

#: Inline jobs remembered for status look-ups (the oldest finished ones are forgotten).
INLINE_HISTORY = 1_000
#: How long shutdown waits for inline jobs already running.
INLINE_GRACE = 5.0

_after_response: contextvars.ContextVar[list[Callable[[], None]] | None] = contextvars.ContextVar(
    "bastion_jobs_after_response", default=None
)


class AfterResponse:
    """Holds inline jobs deferred during a request until its response has been sent.

    An ASGI app returns once the last body chunk is sent, so starting the
    jobs then means no job competes with the response it was deferred from.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        pending: list[Callable[[], None]] = []
        token = _after_response.set(pending)
        try:
            await self.app(scope, receive, send)
        finally:
            _after_response.reset(token)
            for start in pending:
                start()


@dataclass(slots=True)
class InlineJob:
    """Where one inline job stands: what :meth:`InlineRunner.info` reports."""

    task: str
    status: JobStatus = "waiting"
    #: Runs started so far (0 while it waits for its first).
    attempts: int = 0


class InlineRunner:
    """Runs deferred jobs and periodic tasks in this process, and remembers how they went."""

    def __init__(
        self, settings: Settings, database: Database, metrics: JobMetrics | None = None
    ) -> None:
        self.settings = settings
        self.database = database
        self.metrics = metrics
        self._ids = itertools.count(int(time.time() * 1000) * 1000)
        self._jobs: OrderedDict[int, InlineJob] = OrderedDict()
        self._background: set[asyncio.Task[None]] = set()
        self._timers: list[asyncio.Task[None]] = []

    def start(self, tasks: Iterable[Task]) -> None:
        """Start a timer for each periodic task."""
        for declared in tasks:
            if declared.cron is not None:
                self._timers.append(asyncio.create_task(self._every(declared)))

    async def stop(self) -> None:
        """Stop the timers and give running jobs :data:`INLINE_GRACE` seconds to finish."""
        for timer in self._timers:
            timer.cancel()
        for timer in self._timers:
            with contextlib.suppress(asyncio.CancelledError):
                await timer
        self._timers.clear()
        if self._background:
            _done, pending = await asyncio.wait(self._background, timeout=INLINE_GRACE)
            for job in pending:
                job.cancel()

    def defer(self, declared: Task, delay: float, arguments: dict[str, Any]) -> int:
        """Remember the job and start it: now, or once the current response is sent."""
        job_id = next(self._ids)
        self._jobs[job_id] = InlineJob(declared.name)
        while len(self._jobs) > INLINE_HISTORY:
            self._jobs.popitem(last=False)

        def start() -> None:
            self._spawn(self._run(declared, job_id, delay, arguments))

        pending = _after_response.get()
        if pending is not None:
            pending.append(start)
        else:
            start()
        return job_id

    def info(self, job_id: int) -> JobInfo | None:
        job = self._jobs.get(job_id)
        if job is None:
            return None
        return JobInfo(job_id, job.task, job.status, job.attempts)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        job = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(job)
        job.add_done_callback(self._background.discard)

    async def _run(
        self, declared: Task, job_id: int, delay: float, arguments: dict[str, Any]
    ) -> None:
        # A job forgotten from the history (over INLINE_HISTORY) still runs to its end.
        job = self._jobs.get(job_id) or InlineJob(declared.name)
        while True:
            if delay > 0:
                await asyncio.sleep(delay)
            job.attempts += 1
            job.status = "running"
            try:
                await run_attempt(
                    declared,
                    job_id=job_id,
                    attempt=job.attempts,
                    kwargs=arguments,
                    database=self.database,
                    settings=self.settings,
                    metrics=self.metrics,
                    worker="inline",
                )
            except Exception as exc:  # counted and logged by run_attempt; never re-raised
                retry = declared.retry_in(exc, job.attempts)
                if retry is None:
                    job.status = "failed"
                    return
                job.status = "waiting"
                delay = retry
                continue
            job.status = "succeeded"
            return

    async def _every(self, declared: Task) -> None:
        """One periodic task: on the cron instants procrastinate would use."""
        assert declared.cron is not None
        while True:
            await asyncio.sleep(seconds_until_next(declared.cron) + 0.01)
            self.defer(declared, 0.0, {})
