"""``Jobs``: the one engine an app defers to, on procrastinate or inline.

``JOBS_ENABLED=true`` (PostgreSQL): a job is a row in procrastinate's
``procrastinate_jobs`` and a ``bastion worker`` process runs it; the app only
inserts and reads rows, through a small psycopg pool opened without waiting
(an app whose database is down still starts, and its health says so).

Otherwise (the embedded default, SQLite included): a job runs in the app's
own event loop, on its own task, after the response of the request that
deferred it has been sent (see :class:`AfterResponse`); a failure is
retried by the same rule a worker applies, then logged and counted, and never
reaches the request. Periodic tasks run on a timer in the app. Inline jobs
live in memory: they die with the process, which is why ``bastion check
--deploy`` warns about inline jobs in production (W061).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import func, select
from starlette.types import ASGIApp, Receive, Scope, Send

from bastion.db import Database, JobRun
from bastion.jobs.runner import run_attempt
from bastion.jobs.schedule import seconds_until_next
from bastion.jobs.tasks import Task, check_arguments, registered_tasks

if TYPE_CHECKING:
    import procrastinate
    import psycopg_pool

    from bastion.config import Settings
    from bastion.jobs.metrics import JobMetrics

__all__ = [
    "AfterResponse",
    "JobInfo",
    "JobStatus",
    "Jobs",
    "WorkerInfo",
    "builtin_tasks",
    "current_jobs",
]

logger = logging.getLogger("bastion.jobs")

JobStatus = Literal["waiting", "running", "succeeded", "failed"]
#: procrastinate's statuses, in the four words of the contract.
_STATUS: dict[str, JobStatus] = {
    "todo": "waiting",
    "doing": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "failed",
    "aborted": "failed",
    "aborting": "running",
}
#: How often the app samples the queue for the metrics.
SAMPLE_INTERVAL = 5.0
#: Inline jobs remembered for status look-ups (the oldest finished ones are forgotten).
INLINE_HISTORY = 1_000
#: How long shutdown waits for inline jobs already running.
INLINE_GRACE = 5.0


@dataclass(frozen=True, slots=True)
class JobInfo:
    id: int
    task: str
    status: JobStatus
    #: Runs started so far (0 while it waits for its first).
    attempts: int

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "task": self.task, "status": self.status, "attempts": self.attempts}


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    id: int
    heartbeat_age: float


# -- the envelope's own tasks ------------------------------------------------------------


async def _clean_sessions(ctx: Any) -> None:
    from datetime import timedelta  # noqa: PLC0415

    from bastion.auth.sessions import delete_expired  # noqa: PLC0415 - auth imports jobs users

    async with ctx.database.session() as db:
        removed = await delete_expired(db, timedelta(seconds=ctx.settings.SESSION_IDLE_TIMEOUT))
    if removed:
        logger.info("jobs: removed %d expired or idle sessions", removed)


def builtin_tasks(settings: Settings) -> list[Task]:
    """bastion's own periodic work. (Blocked sign-in counts are flushed by
    :class:`~bastion.audit.BlockedAttempts` in the app itself, every 5 s and at
    shutdown: a job would add a queue round trip and lose nothing less.)"""
    return [
        Task("bastion.sessions.clean", _clean_sessions, every=settings.JOBS_SESSION_CLEANUP_SECONDS)
    ]


# -- the current engine, for Task.defer --------------------------------------------------

_current: Jobs | None = None


def current_jobs() -> Jobs:
    """The engine of the app running in this process (set by ``Bastion``)."""
    if _current is None:
        raise RuntimeError("no jobs engine: build a bastion.Bastion first")
    return _current


def set_jobs(jobs: Jobs) -> None:
    global _current  # noqa: PLW0603 - one app per process, like the cache
    _current = jobs


# -- inline: after the response ---------------------------------------------------------

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


# -- the engine ---------------------------------------------------------------------------


class Jobs:
    """Defer, look up and (inline) run jobs; one per app, built by ``Bastion``."""

    def __init__(
        self, settings: Settings, database: Database, metrics: JobMetrics | None = None
    ) -> None:
        self.settings = settings
        self.database = database
        self.metrics = metrics
        self.enabled = settings.JOBS_ENABLED
        self.builtins = builtin_tasks(settings)
        self._background: set[asyncio.Task[None]] = set()
        self._timers: list[asyncio.Task[None]] = []
        # inline state
        self._ids = itertools.count(int(time.time() * 1000) * 1000)
        self._inline: OrderedDict[int, list[Any]] = OrderedDict()  # id -> [task, status, attempts]
        # procrastinate state (JOBS_ENABLED)
        self._pool: psycopg_pool.AsyncConnectionPool | None = None
        self.app: procrastinate.App | None = None

    def tasks(self) -> dict[str, Task]:
        """Every task this engine can run: bastion's own and those declared in this process."""
        return {**{t.name: t for t in self.builtins}, **registered_tasks()}

    # -- lifetime ----------------------------------------------------------------------

    async def start(self, *, periodic: bool = True) -> None:
        """Open the queue (JOBS_ENABLED) or start the periodic timers (inline)."""
        if self.enabled:
            await self.open()
            if self.metrics is not None:
                self._timers.append(asyncio.create_task(self._sample_forever()))
        elif periodic:
            for declared in self.tasks().values():
                if declared.cron is not None:
                    self._timers.append(asyncio.create_task(self._every(declared)))

    async def open(self, *, max_size: int = 4) -> procrastinate.App:
        """The procrastinate app on a pool opened without waiting for the database."""
        if self.app is not None:
            return self.app
        import procrastinate  # noqa: PLC0415 - only with JOBS_ENABLED
        import psycopg_pool  # noqa: PLC0415

        timeout = self.settings.DATABASE_TIMEOUT_MS / 1000
        self._pool = psycopg_pool.AsyncConnectionPool(
            self.settings.DATABASE_URL,
            min_size=1,
            max_size=max_size,
            timeout=timeout,
            kwargs={"connect_timeout": max(1, round(timeout)), "application_name": "bastion-jobs"},
            open=False,
            check=psycopg_pool.AsyncConnectionPool.check_connection,
        )
        await self._pool.open(wait=False)
        app = procrastinate.App(connector=procrastinate.PsycopgConnector())
        await app.open_async(self._pool)
        for declared in self.tasks().values():
            self._register(app, declared)
        self.app = app
        return app

    def _register(self, app: procrastinate.App, declared: Task) -> None:

        async def run(context: procrastinate.JobContext, /, **kwargs: Any) -> None:
            kwargs.pop("timestamp", None)  # procrastinate gives periodic tasks their instant
            job = context.job
            assert job.id is not None
            await run_attempt(
                declared,
                job_id=job.id,
                attempt=job.attempts + 1,
                kwargs=kwargs,
                database=self.database,
                settings=self.settings,
                metrics=self.metrics,
                worker=context.worker_name,
            )

        registered = app.task(
            name=declared.name,
            queue=declared.queue,
            retry=declared.retry or False,
            pass_context=True,
        )(run)
        if declared.cron is not None:
            app.periodic(cron=declared.cron, periodic_id=declared.name)(registered)  # type: ignore[arg-type]

    async def stop(self) -> None:
        """Stop the timers, give running inline jobs a moment, close the pool."""
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
        if self.app is not None:
            await self.app.close_async()
            self.app = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

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
            job_id = await self._defer_queued(declared, delay, arguments)
        else:
            job_id = self._defer_inline(declared, delay or 0.0, arguments)
        if self.metrics is not None:
            self.metrics.deferred.labels(declared.name).inc()
        return job_id

    async def _defer_queued(
        self, declared: Task, delay: float | None, arguments: dict[str, Any]
    ) -> int:
        app = await self.open()
        if declared.name not in app.tasks:
            self._register(app, declared)
        deferrer = app.configure_task(
            declared.name,
            queue=declared.queue,
            schedule_in={"seconds": delay} if delay else None,
        )
        return await deferrer.defer_async(**arguments)

    def _defer_inline(self, declared: Task, delay: float, arguments: dict[str, Any]) -> int:
        job_id = next(self._ids)
        self._inline[job_id] = [declared.name, "waiting", 0, time.monotonic() + delay]
        while len(self._inline) > INLINE_HISTORY:
            self._inline.popitem(last=False)

        def start() -> None:
            self._spawn(self._run_inline(declared, job_id, delay, arguments))

        pending = _after_response.get()
        if pending is not None:
            pending.append(start)
        else:
            start()
        return job_id

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        job = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(job)
        job.add_done_callback(self._background.discard)

    async def _run_inline(
        self, declared: Task, job_id: int, delay: float, arguments: dict[str, Any]
    ) -> None:
        state = self._inline.get(job_id) or [declared.name, "waiting", 0, 0.0]
        runs = 0
        while True:
            if delay > 0:
                state[3] = time.monotonic() + delay
                await asyncio.sleep(delay)
            runs += 1
            state[1], state[2] = "running", runs
            try:
                await run_attempt(
                    declared,
                    job_id=job_id,
                    attempt=runs,
                    kwargs=arguments,
                    database=self.database,
                    settings=self.settings,
                    metrics=self.metrics,
                    worker="inline",
                )
            except Exception as exc:  # counted and logged by run_attempt; never re-raised
                retry = declared.retry_in(exc, runs)
                if retry is None:
                    state[1] = "failed"
                    return
                state[1] = "waiting"
                delay = retry
                continue
            state[1] = "succeeded"
            return

    async def _every(self, declared: Task) -> None:
        """Inline periodic task: on the cron instants procrastinate would use."""
        assert declared.cron is not None
        while True:
            await asyncio.sleep(seconds_until_next(declared.cron) + 0.01)
            self._defer_inline(declared, 0.0, {})

    # -- looking --------------------------------------------------------------------------

    async def ready(self) -> bool:
        """True when jobs are enabled and their database answers (the health flag)."""
        if not self.enabled:
            return False
        try:
            app = await self.open()
            async with asyncio.timeout(self.settings.DATABASE_TIMEOUT_MS / 1000):
                return await app.check_connection_async()
        except Exception:  # refused, hung, not migrated: all read as "jobs are not available"
            return False

    async def info(self, job_id: int) -> JobInfo | None:
        """Where job ``job_id`` stands, or None if this engine does not know it."""
        if not self.enabled:
            state = self._inline.get(job_id)
            if state is None:
                return None
            return JobInfo(job_id, state[0], state[1], state[2])
        row = await self._query_one(
            "SELECT id, task_name, status::text AS status, attempts "
            "FROM procrastinate_jobs WHERE id = %(id)s",
            id=job_id,
        )
        if row is None:
            return None
        status = _STATUS.get(row["status"], "failed")
        # procrastinate counts finished attempts (finish_job and retry_job add one), so a
        # running job has started one more than its row says.
        started = row["attempts"] + (1 if status == "running" else 0)
        return JobInfo(row["id"], row["task_name"], status, started)

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
        rows = await self._query_all(
            "SELECT id, extract(epoch FROM now() - last_heartbeat)::float8 AS age "
            "FROM procrastinate_workers ORDER BY id"
        )
        return [WorkerInfo(row["id"], row["age"]) for row in rows]

    async def _query_one(self, query: str, **arguments: Any) -> dict[str, Any] | None:
        app = await self.open()
        result: dict[str, Any] | None = await app.connector.execute_query_one_async(
            query,
            **arguments,
        )
        return result

    async def _query_all(self, query: str, **arguments: Any) -> list[dict[str, Any]]:
        app = await self.open()
        rows: Iterable[dict[str, Any]] = await app.connector.execute_query_all_async(
            query,
            **arguments,
        )
        return list(rows)

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
        metrics = self.metrics
        if metrics is None or not self.enabled:
            return
        waiting = await self._query_all(
            "SELECT queue_name, count(*)::int AS n, "
            "coalesce(max(extract(epoch FROM now() - coalesce(j.scheduled_at, e.at))), 0)::float8 "
            "AS oldest FROM procrastinate_jobs j LEFT JOIN LATERAL ("
            "SELECT min(at) AS at FROM procrastinate_events WHERE job_id = j.id) e ON true "
            "WHERE j.status = 'todo' AND (j.scheduled_at IS NULL OR j.scheduled_at <= now()) "
            "GROUP BY queue_name"
        )
        metrics.waiting.clear()
        metrics.oldest_waiting.clear()
        for row in waiting:
            metrics.waiting.labels(row["queue_name"]).set(row["n"])
            metrics.oldest_waiting.labels(row["queue_name"]).set(row["oldest"])
        counts = await self._query_all(
            "SELECT task_name, status::text AS status, count(*)::int AS n "
            "FROM procrastinate_jobs GROUP BY task_name, status"
        )
        metrics.jobs.clear()
        for row in counts:
            metrics.jobs.labels(row["task_name"], _STATUS.get(row["status"], "failed")).inc(
                row["n"]
            )
        workers = await self.workers()
        metrics.heartbeat_age.clear()
        for worker in workers:
            metrics.heartbeat_age.labels(str(worker.id)).set(worker.heartbeat_age)
        metrics.workers.set(len(workers))
