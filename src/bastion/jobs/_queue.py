"""Jobs on procrastinate's PostgreSQL tables: the backend with ``JOBS_ENABLED=true``.

A job is a row in ``procrastinate_jobs`` and a ``bastion worker`` process runs
it; the app only inserts and reads rows, through a small psycopg pool opened
without waiting (an app whose database is down still starts, and its health
says so). procrastinate is imported only here, and only when the queue opens.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, Any

from bastion.db._engine import DatabaseUnavailable
from bastion.jobs._info import JobInfo, JobStatus, WorkerInfo
from bastion.jobs._runner import run_attempt
from bastion.jobs._tasks import Task

if TYPE_CHECKING:
    import procrastinate
    import psycopg_pool

    from bastion.config import Settings
    from bastion.db import Database
    from bastion.jobs._metrics import JobMetrics

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


class ProcrastinateQueue:
    """The procrastinate app on its pool, with bastion's tasks registered on it."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        metrics: JobMetrics | None,
        tasks: Callable[[], Iterable[Task]],
    ) -> None:
        self.settings = settings
        self.database = database
        self.metrics = metrics
        #: The tasks to register when the queue opens (asked then: modules declare more).
        self.tasks = tasks
        self._pool: psycopg_pool.AsyncConnectionPool | None = None
        self.app: procrastinate.App | None = None

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
        for declared in self.tasks():
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

    async def close(self) -> None:
        if self.app is not None:
            await self.app.close_async()
            self.app = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def defer(self, declared: Task, delay: float | None, arguments: dict[str, Any]) -> int:
        app = await self.open()
        if declared.name not in app.tasks:
            self._register(app, declared)
        deferrer = app.configure_task(
            declared.name,
            queue=declared.queue,
            schedule_in={"seconds": delay} if delay else None,
        )
        async with _unavailable():
            return await deferrer.defer_async(**arguments)

    async def info(self, job_id: int) -> JobInfo | None:
        row = await _query_one(
            await self.open(),
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

    async def ready(self) -> bool:
        """Whether the queue's database answers, within the database timeout."""
        try:
            app = await self.open()
            async with asyncio.timeout(self.settings.DATABASE_TIMEOUT_MS / 1000):
                return await app.check_connection_async()
        except Exception:  # refused, hung, not migrated: all read as "jobs are not available"
            return False

    async def workers(self) -> list[WorkerInfo]:
        rows = await _query_all(
            await self.open(),
            "SELECT id, extract(epoch FROM now() - last_heartbeat)::float8 AS age "
            "FROM procrastinate_workers ORDER BY id",
        )
        return [WorkerInfo(row["id"], row["age"]) for row in rows]

    async def sample(self, metrics: JobMetrics) -> None:
        """Queue depth, oldest waiting job, jobs by status and worker heartbeats, now."""
        app = await self.open()
        waiting = await _query_all(
            app,
            "SELECT queue_name, count(*)::int AS n, "
            "coalesce(max(extract(epoch FROM now() - coalesce(j.scheduled_at, e.at))), 0)::float8 "
            "AS oldest FROM procrastinate_jobs j LEFT JOIN LATERAL ("
            "SELECT min(at) AS at FROM procrastinate_events WHERE job_id = j.id) e ON true "
            "WHERE j.status = 'todo' AND (j.scheduled_at IS NULL OR j.scheduled_at <= now()) "
            "GROUP BY queue_name",
        )
        metrics.waiting.clear()
        metrics.oldest_waiting.clear()
        for row in waiting:
            metrics.waiting.labels(row["queue_name"]).set(row["n"])
            metrics.oldest_waiting.labels(row["queue_name"]).set(row["oldest"])
        counts = await _query_all(
            app,
            "SELECT task_name, status::text AS status, count(*)::int AS n "
            "FROM procrastinate_jobs GROUP BY task_name, status",
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


@contextlib.asynccontextmanager
async def _unavailable() -> AsyncIterator[None]:
    """procrastinate's wrapper around a connection that failed, as :class:`DatabaseUnavailable`.

    procrastinate wraps every psycopg error in ``ConnectorException``, a bug
    in a query as much as a database that is down or restarting (the pool's
    ``PoolTimeout`` while it reconnects, a connection the server closed).
    Only the second kind becomes "unavailable", so a handler answers 503 and
    the caller may try again; anything else stays what it is, a bug.
    """
    import procrastinate.exceptions  # noqa: PLC0415 - only with JOBS_ENABLED
    import psycopg  # noqa: PLC0415

    try:
        yield
    except procrastinate.exceptions.ConnectorException as exc:
        cause = exc.__cause__
        if isinstance(cause, psycopg.OperationalError | OSError):
            raise DatabaseUnavailable(f"jobs database: {type(cause).__name__}") from exc
        raise


async def _query_one(app: procrastinate.App, query: str, **arguments: Any) -> dict[str, Any] | None:
    async with _unavailable():
        result: dict[str, Any] | None = await app.connector.execute_query_one_async(
            query, **arguments
        )
        return result


async def _query_all(app: procrastinate.App, query: str, **arguments: Any) -> list[dict[str, Any]]:
    async with _unavailable():
        return list(await app.connector.execute_query_all_async(query, **arguments))
