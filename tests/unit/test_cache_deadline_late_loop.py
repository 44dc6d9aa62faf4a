"""The deadline counts the loop's on-time running, not the wall clock's: a throttled process is not a slow Valkey.

A blocking ``time.sleep`` in a callback is, from the event loop's side, the
same thing as the process being taken off the CPU: nothing runs, and every
timer comes due late.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
import uvloop

from bastion.cache._deadline import SharedDeadline

SECONDS = 0.05

LOOPS = pytest.mark.parametrize(
    "loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"]
)


async def _answered_after_the_process_was_away(stall: float, answer_after: float) -> str:
    """The loop is stalled for ``stall`` early in the call; the answer comes ``answer_after`` later."""
    deadline = SharedDeadline(SECONDS)
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str] = loop.create_future()

    async def call() -> str:
        pending = deadline.enter()
        try:
            got = await answer
        except asyncio.CancelledError:
            if deadline.exit(pending, cancelled=True):
                return "timeout"
            raise
        deadline.exit(pending, cancelled=False)
        return got

    def away() -> None:
        time.sleep(stall)  # descheduled: the wall clock runs, the loop does not
        loop.call_later(answer_after, answer.set_result, "answer")

    task = asyncio.ensure_future(call())
    await asyncio.sleep(0)  # the call is now waiting
    loop.call_later(0.005, away)
    return await task


@LOOPS
def test_time_off_the_cpu_is_not_counted_against_the_call(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    """Answered 30 ms of running after it began, 130 ms of wall clock: a wall-clock deadline expired it."""
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        assert runner.run(_answered_after_the_process_was_away(0.1, 0.025)) == "answer"


@LOOPS
def test_a_call_that_outlives_its_deadline_in_running_time_still_expires(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    """The same stall, but the answer comes after the deadline's own 50 ms of running."""
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        assert runner.run(_answered_after_the_process_was_away(0.1, 0.2)) == "timeout"


async def _hung_call_on_a_late_loop(lateness: float) -> tuple[str, float]:
    """A call that is never answered, on a loop that a busy neighbour makes late on every turn."""
    deadline = SharedDeadline(SECONDS)
    stop = False

    async def neighbour() -> None:
        while not stop:
            time.sleep(lateness)  # noqa: ASYNC251 - the point: the loop is held up
            await asyncio.sleep(0)

    busy = asyncio.ensure_future(neighbour())
    await asyncio.sleep(0)
    start = time.monotonic()
    pending = deadline.enter()
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        outcome = "timeout" if deadline.exit(pending, cancelled=True) else "cancelled"
    else:  # pragma: no cover - the sleep is never answered
        outcome = "done"
    elapsed = time.monotonic() - start
    stop = True
    await busy
    return outcome, elapsed


@LOOPS
def test_a_hung_call_on_a_late_loop_still_ends(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    """Bounded: five ticks, each given the loop's lateness (20 ms a turn here), then one turn more."""
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        outcome, elapsed = runner.run(_hung_call_on_a_late_loop(0.02))
    assert outcome == "timeout"
    # At most about (5 ticks + 2 hops) x (10 ms + 20 ms) = 0.21 s; generous for a loaded machine.
    assert SECONDS * 0.9 <= elapsed < 2.0
