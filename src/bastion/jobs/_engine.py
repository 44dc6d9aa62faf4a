"""``Jobs``: the one engine an app defers to, on procrastinate or inline.

The settings choose the backend once: ``JOBS_ENABLED=true`` (PostgreSQL) puts
jobs in procrastinate's queue for ``bastion worker`` processes
(:mod:`bastion.jobs._queue`); otherwise they run in the app's own event loop
(:mod:`bastion.jobs._inline`). Either way a job's attempt is the same code
(:mod:`bastion.jobs._runner`), ``bastion_job_run`` records it, and this class answers
the same questions: defer, where does a job stand, how many runs completed,
which workers are alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from bastion.db import Database
from bastion.db._models import JobRun
from bastion.jobs._builtin import builtin_tasks
from bastion.jobs._info import JobInfo, WorkerInfo
from bastion.jobs._inline import InlineRunner
from bastion.jobs._queue import ProcrastinateQueue
from bastion.jobs._tasks import Task, check_arguments, registered_tasks

if TYPE_CHECKING:
    import procrastinate

    from bastion.config import Settings
    from bastion.jobs._metrics import JobMetrics

logger = logging.getLogger("bastion.jobs")

#: How often the app samples the queue for the metrics.
SAMPLE_INTERVAL = 5.0


class Jobs:
    """Defer, look up and (inline) run jobs; one per app, built by ``Bastion``."""

    def __init__(
        self, settings: Settings, database: Database, metrics: JobMetrics | None = None
    ) -> None:
        self.settings = settings
        self.database = database
        self.metrics = metrics
        self.enabled = settings.JOBS_ENABLED
        if metrics is not None:
            metrics.enabled.set(1 if self.enabled else 0)
        self.builtins = builtin_tasks(settings)
        self.inline = InlineRunner(settings, database, metrics)
        self.queue = ProcrastinateQueue(settings, database, metrics, lambda: self.tasks().values())
        self._sampler: asyncio.Task[None] | None = None

    def tasks(self) -> dict[str, Task]:
        """Every task this engine can run: bastion's own and those declared in this process."""
        return {**{t.name: t for t in self.builtins}, **registered_tasks()}

    @property
    def app(self) -> procrastinate.App | None:
        """procrastinate's app once the queue is open (``bastion worker`` runs it)."""
        return self.queue.app

    # -- lifetime ----------------------------------------------------------------------

    async def start(self, *, periodic: bool = True) -> None:
        """Open the queue (JOBS_ENABLED) or start the periodic timers (inline)."""
        if self.enabled:
            await self.open()
            if self.metrics is not None:
                self._sampler = asyncio.create_task(self._sample_forever())
        elif periodic:
            self.inline.start(self.tasks().values())

    async def open(self, *, max_size: int = 4) -> procrastinate.App:
        """The procrastinate app on a pool opened without waiting for the database."""
        return await self.queue.open(max_size=max_size)

    async def stop(self) -> None:
        """Stop the timers, give running inline jobs a moment, close the pool."""
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
            self._sampler = None
        await self.inline.stop()
        await self.queue.close()

    # -- deferring ---------------------------------------------------------------------

    async def defer(
        self,
        declared: Task,
        *,
        delay: float | None = None,
        at: datetime | None = None,
        **kwargs: Any,
    ) -> int:
        """Queue one run of ``declared``; returns the job's id.

        ``delay`` (seconds) or ``at`` (an aware datetime) schedule it later.
        """
        if delay is not None and at is not None:
            raise ValueError("give delay or at, not both")
        if at is not None and at.tzinfo is None:
            raise ValueError("at must be timezone-aware")
        arguments = check_arguments(kwargs)
        if at is not None:
            delay = max(0.0, (at - datetime.now(UTC)).total_seconds())
        if self.enabled:
            job_id = await self.queue.defer(declared, delay, arguments)
        else:
            job_id = self.inline.defer(declared, delay or 0.0, arguments)
        if self.metrics is not None:
            self.metrics.deferred.labels(declared.name).inc()
        return job_id

    # -- looking --------------------------------------------------------------------------

    async def ready(self) -> bool:
        """True when jobs are enabled and their database answers (the health flag)."""
        return self.enabled and await self.queue.ready()

    async def info(self, job_id: int) -> JobInfo | None:
        """Where job ``job_id`` stands, or None if this engine does not know it."""
        if not self.enabled:
            return self.inline.info(job_id)
        return await self.queue.info(job_id)

    async def completed_runs(self, job_id: int) -> int:
        """Runs of ``job_id`` that reached the end of the job body."""
        async with self.database.session() as db:
            count = await db.scalar(
                select(func.count())
                .select_from(JobRun)
                .where(JobRun.job_id == job_id, JobRun.outcome == "succeeded")
            )
        return int(count or 0)

    async def recent_runs(self, limit: int = 20) -> list[JobRun]:
        async with self.database.session() as db:
            rows = await db.scalars(select(JobRun).order_by(JobRun.id.desc()).limit(limit))
            return list(rows)

    async def workers(self) -> list[WorkerInfo]:
        """Workers with a heartbeat in the database (none in inline mode)."""
        if not self.enabled:
            return []
        return await self.queue.workers()

    # -- metrics ----------------------------------------------------------------------------

    async def _sample_forever(self) -> None:
        failing = False
        while True:
            try:
                await self.sample()
                failing = False
            except Exception as exc:  # the database is away: the next sample tries again
                if not failing:
                    logger.warning("jobs: could not sample the queue (%s)", type(exc).__name__)
                failing = True
            await asyncio.sleep(SAMPLE_INTERVAL)

    async def sample(self) -> None:
        """Queue depth, oldest waiting job, jobs by status and worker heartbeats, now."""
        if self.metrics is None or not self.enabled:
            return
        await self.queue.sample(self.metrics)
