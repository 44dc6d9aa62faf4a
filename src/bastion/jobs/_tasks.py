"""Declaring a task: once, in application code, with no idea which backend will run it.

    from bastion.jobs import JobContext, task

    @task(queue="mail", retries=5, backoff=2)
    async def send_welcome(ctx: JobContext, user_id: int) -> None:
        async with ctx.database.session() as db:
            ...

    await send_welcome.defer(user_id=42)                  # as soon as possible
    await send_welcome.defer(user_id=42, delay=60)        # in a minute
    await send_welcome.defer(user_id=42, at=tomorrow_9am)

    @task(every=600)                                      # periodic: every 10 minutes
    async def tidy(ctx: JobContext) -> None: ...

A task is an ``async def`` taking a :class:`JobContext` first, then keyword
arguments that survive JSON (they are stored in PostgreSQL when jobs are
enabled, so the inline backend refuses anything else too: a job that works
on a laptop works in production). Declaring registers the task in a
process-wide table, which is how a worker finds the tasks of the modules it
imported (see :func:`bastion._plugins.load_task_modules`).

The retry rule is procrastinate's own ``RetryStrategy``: ``retries`` more
attempts after the first, waiting ``backoff ** attempt`` seconds (2, 4, 8 ...
for ``backoff=2``) plus a fixed ``retry_wait``. The inline backend asks the
same rule how long to wait, so both backends retry identically. The strategy
is built when it is first asked for, not when a task is declared: declaring
tasks is what every app does at import, and procrastinate (with psycopg
under it) is a fifth of a second that an app without ``JOBS_ENABLED`` and
without a failing job never needs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bastion._parse.schedule import cron_for
from bastion.jobs._current import current_jobs

if TYPE_CHECKING:
    from procrastinate import RetryStrategy

    from bastion.config import Settings
    from bastion.db import Database

DEFAULT_QUEUE = "default"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,127}")


@dataclass(frozen=True, slots=True)
class JobContext:
    """What a running job may use: who it is, which attempt this is, and the database."""

    job_id: int
    task: str
    #: 1 for the first run, 2 for the first retry, ...
    attempt: int
    database: Database
    settings: Settings


TaskBody = Callable[..., Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Task:
    """A declared task: its body and how it is run. Immutable, so a backend can cache it."""

    name: str
    body: TaskBody
    queue: str = DEFAULT_QUEUE
    retries: int = 0
    backoff: int = 0
    retry_wait: int = 0
    #: Run every this many seconds (periodic tasks take no arguments).
    every: int | None = None

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"task names are [A-Za-z_][A-Za-z0-9_.:-]*, got {self.name!r}")
        if not _NAME.fullmatch(self.queue):
            raise ValueError(f"queue names are [A-Za-z_][A-Za-z0-9_.:-]*, got {self.queue!r}")
        if self.retries < 0 or self.backoff < 0 or self.retry_wait < 0:
            raise ValueError("retries, backoff and retry_wait must not be negative")
        if self.every is not None:
            cron_for(self.every)  # ValueError for a period cron cannot express

    @property
    def retry(self) -> RetryStrategy | None:
        """procrastinate's strategy for this task, or None: a failure is final."""
        if not self.retries:
            # procrastinate's max_attempts counts retries, and 0 would mean "retry forever".
            return None
        from procrastinate import RetryStrategy  # noqa: PLC0415 - the first retry, not import

        return RetryStrategy(
            max_attempts=self.retries, wait=self.retry_wait, exponential_wait=self.backoff
        )

    @property
    def cron(self) -> str | None:
        return cron_for(self.every) if self.every is not None else None

    def retry_in(self, exception: BaseException, runs: int) -> float | None:
        """Seconds to wait before the next attempt after ``runs`` runs, or None: give up.

        Asks procrastinate's own strategy, the one its workers ask, with a job
        that has the same number of previous attempts.
        """
        strategy = self.retry
        if strategy is None:
            return None
        from procrastinate.jobs import Job  # noqa: PLC0415 - see retry

        job = Job(
            id=0,
            queue=self.queue,
            lock=None,
            queueing_lock=None,
            task_name=self.name,
            attempts=runs - 1,
        )
        decision = strategy.get_retry_decision(exception=exception, job=job)
        if decision is None:
            return None
        if decision.retry_at is None:
            return 0.0
        return max(0.0, (decision.retry_at - datetime.now(UTC)).total_seconds())

    async def defer(
        self, *, delay: float | None = None, at: datetime | None = None, **kwargs: Any
    ) -> int:
        """Queue a run on the running app's engine (see :meth:`bastion.jobs.Jobs.defer`)."""
        return await current_jobs().defer(self, delay=delay, at=at, **kwargs)


_REGISTRY: dict[str, Task] = {}


def task(
    name: str | None = None,
    *,
    queue: str = DEFAULT_QUEUE,
    retries: int = 0,
    backoff: int = 0,
    retry_wait: int = 0,
    every: int | None = None,
) -> Callable[[TaskBody], Task]:
    """Declare ``body`` as a task (its name defaults to ``module.function``)."""

    def declare(body: TaskBody) -> Task:
        declared = Task(
            name or f"{body.__module__}.{body.__qualname__}",
            body,
            queue=queue,
            retries=retries,
            backoff=backoff,
            retry_wait=retry_wait,
            every=every,
        )
        existing = _REGISTRY.get(declared.name)
        if existing is not None and existing.body is not body:
            raise ValueError(f"task {declared.name!r} is declared twice")
        _REGISTRY[declared.name] = declared
        return declared

    return declare


def registered_tasks() -> Mapping[str, Task]:
    """Every task declared so far in this process, by name."""
    return dict(_REGISTRY)


def check_arguments(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments as they will come back from the queue: JSON, or a TypeError now."""
    try:
        loaded: dict[str, Any] = json.loads(json.dumps(dict(kwargs), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"job arguments must be JSON: {exc}") from None
    return loaded
