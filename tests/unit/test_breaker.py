"""The breaker's state machine, driven by an explicit clock."""

from __future__ import annotations

from bastion.cache import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_only() -> None:
    breaker = CircuitBreaker(3, 10, clock=Clock())
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # a success resets the count
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()


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
