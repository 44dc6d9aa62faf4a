"""Periodic schedules: "every N seconds", as the cron expression procrastinate runs.

procrastinate schedules periodic tasks with cron (croniter, seconds as an
optional sixth field); the inline backend runs the same expression on a
timer, so a periodic task fires at the same wall-clock instants whichever
backend runs it. Only periods that divide a minute, an hour or a day evenly
have an exact cron form, so other values are refused rather than rounded:
by the settings (``JOBS_SESSION_CLEANUP_SECONDS``) at start-up, and by
``@task(every=...)`` where it is declared.
"""

from __future__ import annotations

_MINUTE = 60
_HOUR = 3_600
_DAY = 86_400


def cron_for(seconds: int) -> str:
    """The cron expression that fires every ``seconds`` (ValueError if none is exact)."""
    if 0 < seconds < _MINUTE and _MINUTE % seconds == 0:
        return f"* * * * * */{seconds}"
    if seconds % _MINUTE == 0 and 0 < seconds < _HOUR and _HOUR % seconds == 0:
        return f"*/{seconds // _MINUTE} * * * *"
    if seconds % _HOUR == 0 and 0 < seconds <= _DAY and _DAY % seconds == 0:
        hours = seconds // _HOUR
        return "0 0 * * *" if hours == 24 else f"0 */{hours} * * *"
    raise ValueError(
        f"expected a period that divides a minute, an hour or a day evenly "
        f"(e.g. 10, 60, 600, 3600), got {seconds}"
    )
