"""bastion.jobs: background jobs on procrastinate (PostgreSQL), or inline without it.

Declare a task once (:func:`task`), defer it from anywhere in the app
(``await my_task.defer(...)``, or ``await jobs.defer(my_task, ...)`` on the
app's :class:`Jobs`), and let the settings decide who runs it: ``bastion
worker`` processes when ``JOBS_ENABLED=true``, the app's own event loop
otherwise. The contract is
the same on both: JSON arguments, retries with backoff by procrastinate's
``RetryStrategy``, periodic tasks every N seconds, a queue name, and a
failure that never reaches the request that deferred the job.

A worker imports the task modules that apps register under the
``bastion.tasks`` entry point group (the README's jobs section shows how).
"""

from __future__ import annotations

from bastion.jobs._engine import Jobs
from bastion.jobs._info import JobInfo, JobStatus, WorkerInfo
from bastion.jobs._tasks import DEFAULT_QUEUE, JobContext, Task, task

__all__ = [
    "DEFAULT_QUEUE",
    "JobContext",
    "JobInfo",
    "JobStatus",
    "Jobs",
    "Task",
    "WorkerInfo",
    "task",
]
