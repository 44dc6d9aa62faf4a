"""A circuit breaker, so that a sick Valkey costs a few timeouts, not one per request.

Without it every request would wait the full command timeout against a hung
server. It opens on evidence that Valkey is failing, judged the way
resilience4j judges a dependency: over a sliding time window (``window``
seconds, in ten buckets), it opens when at least ``failure_threshold`` calls
failed **and** they are at least ``failure_rate`` of the calls in the window.

Why a rate and not "N failures in a row": a busy app sees failures in bursts
that say nothing about Valkey. One stall of the event loop (a GC pause, a
burst of requests, a descheduled process) can fail every call in flight at
once; with 32 calls in flight, five-in-a-row opened a breaker in front of a
perfectly healthy Valkey. Against thousands of successes in the window those
32 are a fraction of a percent. A Valkey that is really down or hung fails
every call, so the rate is 100 % and the breaker opens after
``failure_threshold`` calls, as quickly as before.

While open, callers are told "absent" at once; after ``cooldown`` one probe is
let through (half-open), and its outcome closes or re-opens the circuit.
Outcomes reported while open come from calls that started before it opened;
they are ignored, so a straggler cannot flap the breaker shut. Each change of
state is logged once, so an outage produces three log lines, not thousands.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable

logger = logging.getLogger("bastion.cache")

#: Buckets per window: the window slides in steps of a tenth of its length.
_BUCKETS = 10


class BreakerState(enum.IntEnum):
    """Numbered so that a metrics gauge can export the state as-is."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    """Failure-rate breaker over a sliding window, with a single half-open probe.

    Not thread-safe by design: one instance belongs to one event loop, and
    asyncio only switches tasks at ``await`` points, none of which are in here.
    """

    def __init__(
        self,
        failure_threshold: int,
        cooldown: float,
        *,
        failure_rate: float = 0.5,
        window: float = 10.0,
        name: str = "valkey",
        clock: Callable[[], float] = time.monotonic,
        log_transitions: bool = True,
    ) -> None:
        if not 0 < failure_rate <= 1:
            raise ValueError("failure_rate must be in (0, 1]")
        if window <= 0:
            raise ValueError("window must be a positive number of seconds")
        self.failure_threshold = failure_threshold
        self.failure_rate = failure_rate
        self.cooldown = cooldown
        self.window = window
        self.name = name
        # An owner that tells its own story (the rate limiter logs one line per
        # outage, not one per probe) turns the transition lines off.
        self.log_transitions = log_transitions
        self._clock = clock
        self._width = window / _BUCKETS
        # Parallel rings: the bucket number each slot holds, and its counts.
        self._stamps = [-1] * _BUCKETS
        self._calls = [0] * _BUCKETS
        self._failures = [0] * _BUCKETS
        self._state = BreakerState.CLOSED
        self._opened_at = 0.0
        self._probe_in_flight = False
        self.listeners: list[Callable[[BreakerState], None]] = []

    @property
    def state(self) -> BreakerState:
        return self._state

    def window_counts(self) -> tuple[int, int]:
        """(calls, failures) recorded in the current window: what the next decision sees."""
        now = int(self._clock() / self._width)
        calls = failures = 0
        for slot in range(_BUCKETS):
            if now - self._stamps[slot] < _BUCKETS:
                calls += self._calls[slot]
                failures += self._failures[slot]
        return calls, failures

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

    def _count(self, failed: bool) -> None:
        bucket = int(self._clock() / self._width)
        slot = bucket % _BUCKETS
        if self._stamps[slot] != bucket:
            self._stamps[slot] = bucket
            self._calls[slot] = 0
            self._failures[slot] = 0
        self._calls[slot] += 1
        self._failures[slot] += failed

    def record_success(self) -> None:
        state = self._state
        if state is BreakerState.CLOSED:
            self._count(False)
        elif state is BreakerState.HALF_OPEN:
            self._probe_in_flight = False
            self._reset_window()
            self._transition(BreakerState.CLOSED)

    def record_failure(self) -> None:
        state = self._state
        if state is BreakerState.CLOSED:
            self._count(True)
            calls, failures = self.window_counts()
            if failures >= self.failure_threshold and failures >= self.failure_rate * calls:
                self._open()
        elif state is BreakerState.HALF_OPEN:
            self._probe_in_flight = False
            self._open()

    def abandon(self) -> None:
        """A permitted call ended with no outcome (its caller went away): free the probe slot.

        Without this a half-open probe whose request was cancelled would hold
        the slot forever, and the breaker would never close again.
        """
        if self._state is BreakerState.HALF_OPEN:
            self._probe_in_flight = False

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._transition(BreakerState.OPEN)

    def _reset_window(self) -> None:
        self._stamps = [-1] * _BUCKETS
        self._calls = [0] * _BUCKETS
        self._failures = [0] * _BUCKETS

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
