"""Later: how a block below the jobs engine has work run outside the request.

bastion's accounts send mail (a reset link, a security notice), and must never
send it inside the request: a slow SMTP server would hold the answer and a
refused one would fail it. The jobs engine sits above the accounts in the
layers (it runs their periodic work), so they cannot import it. They call a
:class:`Later` instead, which :class:`~bastion.Bastion` wires to its jobs
engine: a procrastinate job when ``JOBS_ENABLED``, the app's own event loop
otherwise. This mirrors how the module-level cache functions find the app's
cache.
"""

from __future__ import annotations

from typing import Any, Protocol


class Later(Protocol):
    async def __call__(self, task: str, /, **arguments: Any) -> None:
        """Queue one run of bastion's task named ``task`` with JSON ``arguments``.

        Never raises: a queue that cannot take the job is logged and counted
        by the implementation, and the caller's request goes on.
        """


class NoLater:
    """Before any :class:`~bastion.Bastion` exists: nothing can run later, so say so loudly."""

    async def __call__(self, task: str, /, **arguments: Any) -> None:
        raise RuntimeError(f"no bastion app is running to run {task!r}; build Bastion(...) first")


_current: Later = NoLater()


def set_later(later: Later) -> None:
    """Make ``later`` the process's way to run work later (``Bastion`` calls it)."""
    global _current  # noqa: PLW0603 - one engine per process, as set_cache and set_jobs
    _current = later


def current_later() -> Later:
    return _current
