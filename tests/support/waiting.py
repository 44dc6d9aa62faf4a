"""Waiting for a condition, never for a fixed time: poll it, with a generous bound.

A fixed sleep is either too short on a loaded machine (the test goes red) or
too long everywhere else (the suite crawls). Polling returns as soon as the
condition holds and fails, naming what was awaited and the last thing seen,
only when it has not held for ``timeout`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["wait_for"]


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    """Call ``condition`` every ``every`` seconds until it is truthy; return that value.

    ``Any``, because what a condition returns when it holds is often a narrower
    thing than what it returns when it does not (a state dict, or False).

    Fails with an AssertionError after ``timeout`` seconds, with ``what`` and
    the last value the condition returned.
    """
    deadline = time.monotonic() + timeout
    while True:
        last = condition()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")
        time.sleep(every)
