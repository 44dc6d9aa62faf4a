"""Running one attempt of a job: the same code on both backends.

Whatever runs the attempt (a procrastinate worker, or the app's own loop in
inline mode), this is where the body is called, the run is written to
``bastion_job_run`` and the metrics are counted. Writing the run is best effort: a
database that is down at that moment must not turn a finished body into a
failed job (the queue, not this history, decides what runs again).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bastion.db import DATABASE_ERRORS, Database
from bastion.db._models import JobRun
from bastion.db._types import utcnow
from bastion.jobs._tasks import JobContext, Task

if TYPE_CHECKING:
    from bastion.config import Settings
    from bastion.jobs._metrics import JobMetrics

logger = logging.getLogger("bastion.jobs")


async def run_attempt(
    task: Task,
    *,
    job_id: int,
    attempt: int,
    kwargs: Mapping[str, Any],
    database: Database,
    settings: Settings,
    metrics: JobMetrics | None,
    worker: str | None,
) -> None:
    """Run the body once; raise what it raised, after recording the run."""
    started = utcnow()
    context = JobContext(job_id, task.name, attempt, database, settings)
    try:
        await task.body(context, **kwargs)
    except Exception as exc:
        retry = task.retry_in(exc, attempt)
        if metrics is not None:
            (metrics.retried if retry is not None else metrics.failed).labels(task.name).inc()
        logger.warning(
            "jobs: %s[%s] attempt %d raised %s; %s",
            task.name,
            job_id,
            attempt,
            type(exc).__name__,
            f"retrying in {retry:.0f}s" if retry is not None else "giving up: failed",
        )
        await _record(database, task, job_id, attempt, started, worker, type(exc).__name__)
        raise
    if metrics is not None:
        metrics.succeeded.labels(task.name).inc()
    await _record(database, task, job_id, attempt, started, worker, None)


async def _record(  # noqa: PLR0917 - one private call site, the run's facts in order
    database: Database,
    task: Task,
    job_id: int,
    attempt: int,
    started: Any,
    worker: str | None,
    error: str | None,
) -> None:
    try:
        async with database.session() as db:
            db.add(
                JobRun(
                    job_id=job_id,
                    task=task.name[:128],
                    attempt=attempt,
                    outcome="failed" if error else "succeeded",
                    error=error[:128] if error else None,
                    worker=worker[:64] if worker else None,
                    started_at=started,
                    finished_at=utcnow(),
                )
            )
            await db.commit()
    except DATABASE_ERRORS as exc:
        logger.warning(
            "jobs: could not record run %d of %s[%s] (%s)",
            attempt,
            task.name,
            job_id,
            type(exc).__name__,
        )
