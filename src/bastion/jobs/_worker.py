"""``bastion worker``: a procrastinate worker that outlives its database and dies cleanly.

procrastinate's worker stops when its database goes away (its heartbeat or
its fetch raises). A supervisor loop here turns that into a wait: one log
line, then a probe with a growing pause (0.5 s up to 5 s: no spinning) until
the database answers, then a fresh worker. Jobs it was running stay
``doing`` in the table and are picked up again by the stalled-job sweep.

The sweep is what makes ``kill -9`` survivable: every worker, every few
seconds, asks procrastinate for jobs whose worker has not sent a heartbeat
for ``JOBS_STALLED_SECONDS`` and puts them back in the queue (one
``UPDATE`` per job, guarded by procrastinate's own status check, so two
sweeping workers cannot both take one job). Heartbeats are written every
``JOBS_STALLED_SECONDS / 6`` seconds, so a live worker is never mistaken for a
dead one, and a dead worker's jobs run again within about
``JOBS_STALLED_SECONDS`` plus one sweep.

SIGTERM (and SIGINT) stop fetching at once and wait up to ``grace`` seconds
for the jobs in flight; any still running then are released (put back in
the queue for another worker) before the process exits, so a stop never
loses a job and never marks one failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from procrastinate.app import WorkerOptions

from bastion.config import Settings
from bastion.db import Database
from bastion.jobs._engine import Jobs

logger = logging.getLogger("bastion.jobs.worker")

#: Longest pause between probes of a database that is away.
MAX_BACKOFF = 5.0


async def run_worker(
    settings: Settings,
    *,
    concurrency: int = 1,
    queues: Sequence[str] | None = None,
    grace: float = 25.0,
    name: str | None = None,
) -> int:
    """Run until SIGTERM/SIGINT; returns the exit status."""
    database = Database.from_settings(settings)
    jobs = Jobs(settings, database)
    app = await jobs.open(max_size=concurrency + 4)
    worker_name = name or f"{socket.gethostname()}-{os.getpid()}"
    stalled = settings.JOBS_STALLED_SECONDS
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    running: set[int] = set()

    async def track(next_call: Any, context: Any, worker: Any) -> Any:
        """Worker middleware: which jobs are in flight, to release them at a hard stop."""
        job_id = context.job.id
        running.add(job_id)
        try:
            return await next_call()
        finally:
            running.discard(job_id)

    sweeper = asyncio.create_task(_sweep(jobs, stalled, stop))
    logger.info(
        "jobs: worker %s starting (concurrency %d, queues %s)",
        worker_name,
        concurrency,
        ",".join(queues) if queues else "all",
    )
    try:
        while not stop.is_set():
            if not await _wait_for_database(app, stop):
                break
            options: WorkerOptions = {
                "concurrency": concurrency,
                "name": worker_name,
                "install_signal_handlers": False,
                "update_heartbeat_interval": max(1.0, stalled / 6),
                "stalled_worker_timeout": stalled,
                "fetch_job_polling_interval": 1.0,
                "abort_job_polling_interval": 5.0,
                "worker_middleware": [track],
            }
            if queues:
                options["queues"] = list(queues)
            work = asyncio.create_task(app.run_worker_async(**options))
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if stop.is_set() and not work.done():
                await _stop_gracefully(jobs, work, running, grace)
                break
            error = work.exception() if not work.cancelled() else None
            if error is None:
                break
            logger.warning(
                "jobs: worker %s lost the database (%s); waiting for it to come back",
                worker_name,
                type(error).__name__,
            )
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        await jobs.stop()
        await database.dispose()
    logger.info("jobs: worker %s stopped", worker_name)
    return 0


async def _wait_for_database(app: Any, stop: asyncio.Event) -> bool:
    """Probe until the queue's database answers (True) or a stop is asked (False)."""
    pause = 0.5
    warned = False
    while not stop.is_set():
        try:
            async with asyncio.timeout(5):
                if await app.check_connection_async():
                    if warned:
                        logger.info("jobs: the database answers again; resuming")
                    return True
        except Exception as exc:  # refused, timed out, restarting: all mean "not yet"
            if not warned:
                logger.warning("jobs: waiting for the database (%s)", type(exc).__name__)
                warned = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), pause)
        pause = min(MAX_BACKOFF, pause * 2)
    return False


async def _sweep(jobs: Jobs, stalled: int, stop: asyncio.Event) -> None:
    """Put the jobs of workers without a recent heartbeat back in the queue."""
    app = await jobs.open()
    interval = max(1.0, min(5.0, stalled / 6))
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
        try:
            for job in await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=stalled):
                assert job.id is not None
                with contextlib.suppress(Exception):  # another sweeper took it first
                    await app.job_manager.retry_job(job)
                    logger.warning(
                        "jobs: %s[%s] was running on a silent worker; queued again",
                        job.task_name,
                        job.id,
                    )
        except Exception as exc:
            logger.debug("jobs: sweep skipped (%s)", type(exc).__name__)


async def _stop_gracefully(
    jobs: Jobs, work: asyncio.Task[None], running: set[int], grace: float
) -> None:
    """Cancel the worker (procrastinate then stops fetching and waits for its jobs)."""
    logger.info("jobs: stopping; waiting up to %.0fs for %d running job(s)", grace, len(running))
    work.cancel()
    done, _ = await asyncio.wait({work}, timeout=grace)
    if done:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            work.result()
        return
    app = jobs.app
    assert app is not None
    for job_id in list(running):
        with contextlib.suppress(Exception):
            await app.job_manager.retry_job_by_id_async(job_id, retry_at=datetime.now(UTC))
            logger.warning("jobs: released job %s still running at shutdown", job_id)
    os._exit(0)  # the bodies still running must not finish a job another worker now owns
