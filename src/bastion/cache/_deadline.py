"""One timer for every in-flight cache call's deadline, instead of one timer per call.

``asyncio.timeout`` arms and cancels a timer handle on every use, which costs
several microseconds: more than the rest of bastion's cache wrapper together,
and a cache read is tens of microseconds. Every call of one connection gets
the same timeout, so the deadlines fall in the order the calls began. A FIFO
of in-flight calls and a single timer, armed only while calls are in flight
and at most for the oldest one's deadline, give each call its own deadline at
the price of a deque append.

The cancellation rules are ``asyncio.timeout``'s: the call's task is cancelled
at the deadline; on the way out that cancellation is withdrawn
(``Task.uncancel``) and reported as a timeout only if nobody else asked to
cancel the task meanwhile, so a caller that goes away still gets its
``CancelledError``.

One rule is not ``asyncio.timeout``'s, and it is the reason this module
exists beyond saving a timer: **the deadline gives the event loop one full
turn before it cancels.** Under load the loop runs late: the timer callback
runs tens of milliseconds after its time, and by then Valkey's reply has often
arrived and the task is already queued to consume it (measured under a
16-connection wrk load: 24 of 25 expired calls had their reply in hand).
Cancelling then throws away a good answer *and* the connection, because
valkey-py must drop a connection cancelled mid-reply; the next call pays a
reconnect, which runs late too, and a busy app starts treating a healthy
Valkey as down. So an expired call is cancelled only if it is still waiting
after the callbacks already queued and one more poll for I/O have run. A call
that is really stuck (a hung Valkey) loses one loop turn, microseconds on an
idle loop; a call whose answer was there completes as if on time.

The second rule is why the deadline counts **the loop's time, not the wall
clock's**. On a throttled CPU (a container at its quota, a noisy neighbour on
the same core) the process is taken off the CPU for tens of milliseconds at a
time while Valkey, on its own core, answers at once. A call needs a few loop
turns (connect, send, read the reply), and each turn then takes as long as
the process waits for the CPU, so a wall-clock deadline expires calls that
Valkey answered in time; measured with the app's core shared by two busy
processes, a few dozen such calls out of ten thousand opened the breaker on a
healthy Valkey and kept it open. So while calls are in flight the deadline
ticks every ``seconds / 5``, and each tick counts only the time up to the
moment it was due: whatever came after, the loop running late, belongs to the
process, not to Valkey. A call expires when it has waited ``seconds`` of that
on-time clock. On a loop that runs on time (an idle app, a hung Valkey) the
two clocks agree and a call ends ``seconds`` after it began, as before; on a
late loop it is given the loop's lateness on top, which every request on that
loop pays anyway, and it still expires after at most five late ticks, that is
five turns of the loop in which Valkey could have answered and did not.
"""

from __future__ import annotations

import asyncio
from collections import deque

#: Ticks per deadline: how finely the deadline tells an on-time loop from a late one.
_TICKS = 5
#: Time left below this is none: sums of float seconds land a hair short of the deadline.
_SLACK = 1e-6


class _Call:
    __slots__ = ("cancelling", "done", "expired", "started", "task")

    def __init__(self, task: asyncio.Task[object], started: float) -> None:
        self.task = task
        #: The on-time clock's reading when the call began.
        self.started = started
        self.cancelling = task.cancelling()
        self.done = False
        self.expired = False


class SharedDeadline:
    """``seconds`` of on-time loop for each call between :meth:`enter` and :meth:`exit`.

    One timer per loop, and only while calls are in flight. Not thread-safe,
    like the event loop it runs on. A new event loop (a test runner making one
    per test) starts afresh; the old loop's calls are gone with it.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._tick = seconds / _TICKS
        self._pending: deque[_Call] = deque()
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # The on-time clock: seconds the loop ran on time while the timer was armed,
        # as of ``_last`` (loop time); the armed timer is due at ``_due``.
        self._on_time = 0.0
        self._last = 0.0
        self._due = 0.0

    def enter(self) -> _Call:
        """Start the clock for the current task's call."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._handle = loop, None
            self._pending.clear()
        task = asyncio.current_task(loop)
        if task is None:  # pragma: no cover - asyncio code always runs in a task
            raise RuntimeError("a cache call must run inside an asyncio task")
        now = loop.time()
        pending = self._pending
        while pending and pending[0].done:  # finished calls leave from the front
            pending.popleft()
        if self._handle is None:
            # Nothing in flight was being timed: the clock resumes from here.
            self._last = now
            call = _Call(task, self._on_time)
            self._arm(loop, now, self.seconds)
        else:
            call = _Call(task, self._on_time + min(now, self._due) - self._last)
        pending.append(call)
        return call

    def exit(self, call: _Call, cancelled: bool) -> bool:
        """End ``call``; True if it was this deadline that cancelled it (report a timeout).

        ``cancelled`` says whether the call is ending with ``CancelledError``.
        When the deadline fired, the cancellation it requested is withdrawn
        here in any case, as ``asyncio.timeout`` does on its way out.
        """
        call.done = True
        if not call.expired:
            return False
        return call.task.uncancel() <= call.cancelling and cancelled

    def _arm(self, loop: asyncio.AbstractEventLoop, now: float, left: float) -> None:
        """Tick again at the next step, or sooner if the oldest call's time runs out first."""
        self._due = now + min(self._tick, left)
        self._handle = loop.call_at(self._due, self._expire, loop)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._loop:
            return
        now = loop.time()
        # The loop was on time up to the moment this tick was due; later is lateness.
        self._on_time += min(now, self._due) - self._last
        self._last = now
        self._handle = None
        on_time = self._on_time
        pending = self._pending
        due: list[_Call] = []
        while pending:
            call = pending[0]
            if call.done:
                pending.popleft()
                continue
            left = call.started + self.seconds - on_time
            if left > _SLACK:
                self._arm(loop, now, left)
                break
            due.append(pending.popleft())
        if due:
            # Two hops through the ready queue: the first runs after whatever was
            # queued before the timer fired (a reply already read), the second
            # after the next poll for I/O (a reply sitting in the socket).
            loop.call_soon(_after_one_turn, loop, due)


def _after_one_turn(loop: asyncio.AbstractEventLoop, due: list[_Call]) -> None:
    still = [call for call in due if not call.done]
    if still:
        loop.call_soon(_cancel_waiting, still)


def _cancel_waiting(due: list[_Call]) -> None:
    for call in due:
        if not call.done:
            call.expired = True
            call.task.cancel()
