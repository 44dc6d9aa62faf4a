"""Refusals by IP that Valkey decided, remembered until their reset time.

A refused attempt records nothing (see :mod:`bastion.ratelimit._window`), so
once Valkey has refused a client by its IP, every later attempt from that IP
is refused too until the oldest counted attempt leaves the window: the
answer cannot change, only its ``Retry-After`` counts down. Remembering it
turns a flood from one address into dict lookups instead of round trips.

Bounded: at most ``capacity`` clients are remembered; when full, expired
entries are dropped, and if none has expired the new refusal is simply not
remembered (its next attempt asks Valkey again, which is correct, only dearer).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

from bastion.ratelimit._decision import Decision


class RememberedRefusals:
    """client key -> (refusal, monotonic time it ends)."""

    def __init__(self, capacity: int = 65_536, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self._clock = clock
        self._entries: dict[str, tuple[Decision, float]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, client: str) -> Decision | None:
        """The remembered refusal with its reset counted down, or None."""
        entry = self._entries.get(client)
        if entry is None:
            return None
        decision, until = entry
        left = until - self._clock()
        if left <= 0:
            del self._entries[client]
            return None
        reset_ms = math.ceil(left * 1000)
        if max(1, math.ceil(left)) == decision.reset_after:
            return decision
        return dataclasses.replace(decision, reset_ms=reset_ms)

    def remember(self, client: str, decision: Decision) -> None:
        """Keep ``decision`` (a refusal by IP) until its window frees a slot."""
        seconds = decision.reset_ms / 1000
        if seconds <= 0:
            return
        now = self._clock()
        if len(self._entries) >= self.capacity and client not in self._entries:
            self._entries = {k: v for k, v in self._entries.items() if v[1] > now}
            if len(self._entries) >= self.capacity:
                return
        self._entries[client] = (decision, now + seconds)

    def forget(self, client: str) -> None:
        self._entries.pop(client, None)
