"""The breaker's state machine, driven by an explicit clock."""

from __future__ import annotations

from bastion.cache import BreakerState
from bastion.cache._breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_dead_valkey_opens_it_after_the_minimum_number_of_failures() -> None:
    breaker = CircuitBreaker(3, 10, clock=Clock())
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED, "two failures are below the minimum"
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()


def test_a_burst_of_failures_among_many_successes_does_not_open_it() -> None:
    """A busy app's stall fails every call in flight at once; Valkey is fine."""
    clock = Clock()
    breaker = CircuitBreaker(5, 10, clock=clock)
    for _ in range(1000):
        breaker.record_success()
        clock.now += 0.001
    for _ in range(32):  # far more than five in a row
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.window_counts() == (1032, 32)


def test_it_opens_when_failures_reach_the_rate() -> None:
    clock = Clock()
    breaker = CircuitBreaker(5, 10, failure_rate=0.5, clock=clock)
    for _ in range(10):
        breaker.record_success()
    for _ in range(9):
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED, "9 of 19 is below half"
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN, "10 of 20 is half"


def test_the_window_slides() -> None:
    """Old successes stop diluting new failures once they leave the window."""
    clock = Clock()
    breaker = CircuitBreaker(3, 10, window=10, clock=clock)
    for _ in range(100):
        breaker.record_success()
    clock.now += 10.5
    assert breaker.window_counts() == (0, 0)
    for _ in range(3):
        breaker.record_failure()
    assert breaker.state is BreakerState.OPEN


def test_outcomes_of_calls_from_before_it_opened_are_ignored() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 10, clock=clock)
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    breaker.record_success()  # a straggler that started while closed
    assert breaker.state is BreakerState.OPEN


def test_an_abandoned_probe_frees_the_slot() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 10, clock=clock)
    breaker.record_failure()
    clock.now += 11
    assert breaker.allow()
    assert not breaker.allow()
    breaker.abandon()  # the probe's caller went away: no verdict
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()


def test_one_probe_after_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 10, clock=clock)
    breaker.record_failure()
    clock.now += 9.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.allow()
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow(), "only one probe at a time"
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()


def test_failed_probe_restarts_the_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 10, clock=clock)
    breaker.record_failure()
    clock.now += 11
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now += 5
    assert not breaker.allow()


def test_listeners_hear_each_transition_once() -> None:
    clock = Clock()
    seen: list[BreakerState] = []
    breaker = CircuitBreaker(2, 1, clock=clock)
    breaker.listeners.append(seen.append)
    for _ in range(10):
        breaker.record_failure()
    clock.now += 2
    breaker.allow()
    breaker.record_success()
    breaker.record_success()
    assert seen == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]
