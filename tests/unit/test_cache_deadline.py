"""The cache's shared deadline behaves as ``asyncio.timeout`` around each call, on one timer."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

import pytest
import uvloop

from bastion.cache._deadline import SharedDeadline

SECONDS = 0.05
#: Generous: a loaded machine may run the timer late, never early; 10 s is the failure.
MARGIN = 0.25


async def _guarded(deadline: SharedDeadline, work: float) -> tuple[str, float]:
    """Run ``work`` seconds of waiting under ``deadline``; say how it ended and when."""
    start = time.monotonic()
    call = deadline.enter()
    try:
        await asyncio.sleep(work)
    except asyncio.CancelledError:
        if deadline.exit(call, cancelled=True):
            return "timeout", time.monotonic() - start
        raise
    deadline.exit(call, cancelled=False)
    return "done", time.monotonic() - start


async def test_a_call_in_time_is_left_alone() -> None:
    deadline = SharedDeadline(SECONDS)
    outcome, _ = await _guarded(deadline, 0.001)
    assert outcome == "done"
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0
    await asyncio.sleep(SECONDS * 1.5)  # the timer fires on a finished call: nothing happens
    assert task.cancelling() == 0


async def test_a_hung_call_times_out_at_its_deadline_and_the_task_is_clean() -> None:
    deadline = SharedDeadline(SECONDS)
    outcome, elapsed = await _guarded(deadline, 10)
    assert outcome == "timeout"
    assert SECONDS * 0.9 <= elapsed < SECONDS + MARGIN
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0


async def test_each_of_many_calls_gets_its_own_deadline() -> None:
    deadline = SharedDeadline(SECONDS)

    async def later(delay: float, work: float) -> tuple[str, float]:
        await asyncio.sleep(delay)
        return await _guarded(deadline, work)

    results = await asyncio.gather(
        later(0, 10), later(0.01, 0.005), later(0.02, 10), later(0.03, 10)
    )
    assert [outcome for outcome, _ in results] == ["timeout", "done", "timeout", "timeout"]
    for outcome, elapsed in results:
        if outcome == "timeout":
            assert SECONDS * 0.9 <= elapsed < SECONDS + MARGIN


async def test_a_call_after_a_quick_one_still_expires() -> None:
    deadline = SharedDeadline(SECONDS)
    assert (await _guarded(deadline, 0.001))[0] == "done"
    await asyncio.sleep(0.01)
    outcome, elapsed = await _guarded(deadline, 10)
    assert outcome == "timeout"
    assert SECONDS * 0.9 <= elapsed < SECONDS + MARGIN


async def test_the_callers_own_cancellation_propagates() -> None:
    deadline = SharedDeadline(10)
    task = asyncio.ensure_future(_guarded(deadline, 10))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_cancel_at_the_deadline_is_not_mistaken_for_a_timeout() -> None:
    deadline = SharedDeadline(SECONDS)

    async def hung() -> str:
        call = deadline.enter()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            # The caller asked to cancel too: that request must survive ours.
            asyncio.current_task().cancel()  # type: ignore[union-attr]
            if deadline.exit(call, cancelled=True):
                return "timeout"
            raise
        return "done"

    with pytest.raises(asyncio.CancelledError):
        await asyncio.ensure_future(hung())


def test_a_new_event_loop_starts_afresh() -> None:
    deadline = SharedDeadline(SECONDS)
    for _ in range(2):
        outcome, elapsed = asyncio.run(_guarded(deadline, 10))
        assert outcome == "timeout"
        assert elapsed < SECONDS + MARGIN


# -- a late loop is not a late dependency ---------------------------------------------------

LOOPS = pytest.mark.parametrize(
    "loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"]
)


async def _answered_during_a_stall(deliver: str) -> str:
    """A call whose answer arrives before its deadline while the loop is stalled past it.

    ``deliver`` says where the answer waits when the loop comes back: already
    handed to the task ("ready"), or still in a socket, unread ("socket").
    """
    deadline = SharedDeadline(SECONDS)
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=ours)
    answer: asyncio.Future[bytes] = loop.create_future()

    async def call() -> str:
        pending = deadline.enter()
        try:
            got = await (answer if deliver == "ready" else reader.read(1))
        except asyncio.CancelledError:
            if deadline.exit(pending, cancelled=True):
                return "timeout"
            raise
        deadline.exit(pending, cancelled=False)
        return got.decode()

    def stall_then_answer() -> None:
        # The dependency answers in time; the loop then stays busy past the deadline.
        if deliver == "ready":
            answer.set_result(b"x")
        else:
            theirs.send(b"x")
        time.sleep(SECONDS * 2)

    task = asyncio.ensure_future(call())
    await asyncio.sleep(0)  # the call is now waiting
    loop.call_soon(stall_then_answer)
    try:
        return await task
    finally:
        writer.close()
        theirs.close()


@LOOPS
@pytest.mark.parametrize("deliver", ["ready", "socket"])
def test_an_answer_that_came_in_time_survives_a_stalled_loop(
    loop_factory: Callable[[], asyncio.AbstractEventLoop], deliver: str
) -> None:
    """Under plain ``asyncio.timeout`` this is a timeout: the answer and its connection lost."""
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        assert runner.run(_answered_during_a_stall(deliver)) == "x"


@LOOPS
def test_a_call_with_no_answer_still_ends_one_loop_turn_after_its_deadline(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        outcome, elapsed = runner.run(_guarded(SharedDeadline(SECONDS), 10))
    assert outcome == "timeout"
    assert SECONDS * 0.9 <= elapsed < SECONDS + MARGIN
