"""A circuit breaker, so that a sick Valkey costs one timeout, not one per request.

Without it every request would wait the full command timeout against a hung
server. After ``failure_threshold`` consecutive failures the breaker opens and
callers are told "absent" at once; after ``cooldown`` one probe is let through
(half-open), and its outcome closes or re-opens the circuit. Each change of
state is logged once, so an outage produces three log lines, not thousands.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable

__all__ = ["BreakerState", "CircuitBreaker"]

logger = logging.getLogger("bastion.cache")


class BreakerState(enum.IntEnum):
    """Numbered so that a metrics gauge can export the state as-is."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    """Consecutive-failure breaker with a single half-open probe.

    Not thread-safe by design: one instance belongs to one event loop, and
    asyncio only switches tasks at ``await`` points, none of which are in here.
    """

    def __init__(
        self,
        failure_threshold: int,
        cooldown: float,
        *,
        name: str = "valkey",
        clock: Callable[[], float] = time.monotonic,
        log_transitions: bool = True,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self.name = name
        # An owner that tells its own story (the rate limiter logs one line per
        # outage, not one per probe) turns the transition lines off.
        self.log_transitions = log_transitions
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False
        self.listeners: list[Callable[[BreakerState], None]] = []

    @property
    def state(self) -> BreakerState:
        return self._state

    def allow(self) -> bool:
        """May a call go to the network now? False means: answer "absent" at once."""
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            if self._clock() - self._opened_at < self.cooldown:
                return False
            self._transition(BreakerState.HALF_OPEN)
        if self._probe_in_flight:
            return False
        self._probe_in_flight = True
        return True

    def record_success(self) -> None:
        self._failures = 0
        self._probe_in_flight = False
        if self._state is not BreakerState.CLOSED:
            self._transition(BreakerState.CLOSED)

    def record_failure(self) -> None:
        self._failures += 1
        self._probe_in_flight = False
        if self._state is BreakerState.HALF_OPEN or (
            self._state is BreakerState.CLOSED and self._failures >= self.failure_threshold
        ):
            self._opened_at = self._clock()
            self._transition(BreakerState.OPEN)

    def _transition(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        if self.log_transitions:
            level = logging.INFO if new is BreakerState.CLOSED else logging.WARNING
            logger.log(
                level,
                "cache breaker %s: %s -> %s",
                self.name,
                old.name.lower(),
                new.name.lower(),
                extra={"breaker": self.name, "breaker_state": new.name.lower()},
            )
        for listener in self.listeners:
            listener(new)
