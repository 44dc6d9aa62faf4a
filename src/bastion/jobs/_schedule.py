"""When a periodic task next fires, on the inline backend's timer.

A task's period becomes a cron expression (:func:`bastion._parse.schedule.cron_for`,
the parser the settings validate with); procrastinate's workers fire on it,
and the inline backend sleeps until the same instant, so a periodic task fires
at the same wall-clock instants whichever backend runs it. croniter is
imported when the first timer is set, not by ``import bastion``.
"""

from __future__ import annotations

import time


def seconds_until_next(cron: str, now: float | None = None) -> float:
    """Seconds from ``now`` (wall clock) to the next instant ``cron`` fires."""
    from croniter import croniter  # noqa: PLC0415 - see the module's doc

    start = time.time() if now is None else now
    following: float = croniter(cron, start).get_next(float)
    return max(0.0, following - start)
