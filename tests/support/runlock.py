"""A readers-writer lock across the workers of one test run: ``load`` tests run alone.

Why: the suite runs on parallel workers (pytest-xdist), several per core,
because most tests wait on servers and subprocesses. A ``load`` test does the
opposite: it saturates the machine with wrk, pins processes to CPUs beside
busy loops, or asserts what a server keeps up under saturation. Beside
another worker's test it would measure the neighbour, and the neighbour
(a test with a deadline) would feel the load. So every test holds this lock
while it runs (setup, call and teardown): an ordinary test in shared mode,
a ``load`` test in exclusive mode, and the machine is the load test's alone.

What a new timing-sensitive test must do: carry the ``load`` marker, which
tests/support/kinds.py gives by path (put it in ``tests/integration/load/``
or list its file there). Nothing else; it is then excluded from the
inner-loop command too.

How: two ``flock`` files in a directory that every worker of the run shares.
``room`` is the lock itself (shared or exclusive). ``turnstile`` stops writer
starvation: a reader passes through it (takes it exclusively, then at once
gives it back) before it takes ``room`` shared, and a writer holds it from
before it asks for ``room`` until it is done. Once a writer waits, readers
queue at the turnstile instead of slipping into ``room`` one after another,
so the writer gets in as soon as the tests already running end. flock locks
belong to the open file, so each worker opens its own; Python opens them
non-inheritable, so no server a test starts keeps a lock alive; and the
kernel drops them when a worker dies.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Literal

__all__ = ["RunLock"]

Mode = Literal["shared", "exclusive"]


class RunLock:
    """One worker's handle on the run's readers-writer lock in ``directory``."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT
        self._turnstile = os.open(directory / "turnstile.lock", flags, 0o600)
        self._room = os.open(directory / "room.lock", flags, 0o600)
        self.mode: Mode | None = None

    def share(self) -> None:
        """Hold the lock beside other readers; wait while a writer holds or awaits it."""
        if self.mode == "shared":
            return
        self.release()
        fcntl.flock(self._turnstile, fcntl.LOCK_EX)
        try:
            fcntl.flock(self._room, fcntl.LOCK_SH)
        finally:
            fcntl.flock(self._turnstile, fcntl.LOCK_UN)
        self.mode = "shared"

    def exclude(self) -> None:
        """Hold the lock alone: no new reader enters, and the ones inside finish first."""
        if self.mode == "exclusive":
            return
        self.release()
        fcntl.flock(self._turnstile, fcntl.LOCK_EX)
        try:
            fcntl.flock(self._room, fcntl.LOCK_EX)
        except BaseException:
            fcntl.flock(self._turnstile, fcntl.LOCK_UN)
            raise
        self.mode = "exclusive"

    def hold(self, mode: Mode) -> None:
        if mode == "exclusive":
            self.exclude()
        else:
            self.share()

    def release(self) -> None:
        if self.mode is None:
            return
        fcntl.flock(self._room, fcntl.LOCK_UN)
        if self.mode == "exclusive":
            fcntl.flock(self._turnstile, fcntl.LOCK_UN)
        self.mode = None

    def close(self) -> None:
        self.release()
        os.close(self._turnstile)
        os.close(self._room)
