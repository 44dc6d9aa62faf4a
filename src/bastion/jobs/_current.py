"""The jobs engine of the app running in this process, for ``Task.defer``.

A task is declared at import time, long before any app exists, so
``await my_task.defer(...)`` finds its engine here: ``Bastion`` sets it when
it is built and again at start-up. One app per process, like the cache.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bastion.jobs._engine import Jobs

_current: Jobs | None = None


def current_jobs() -> Jobs:
    """The engine of the app running in this process (set by ``Bastion``)."""
    if _current is None:
        raise RuntimeError("no jobs engine: build a bastion.Bastion first")
    return _current


def set_jobs(jobs: Jobs) -> None:
    global _current  # noqa: PLW0603 - one app per process, like the cache
    _current = jobs
