"""The moving-window decision, written once for Valkey (a Lua script) and once for memory.

Both implement the same rule, so the fallback limits exactly as Valkey does:

* A *check* is a scope (``ip``, then ``account``) with one or more limits
  (``10/minute;100/day``), each a key holding the timestamps of the attempts
  it counted in the last window.
* Scopes are decided in order. Within a scope every limit is checked before
  any is recorded: if one is full, the attempt is refused and **nothing** is
  recorded, so a refused attempt never extends its own lockout (the lockout
  ends when the oldest counted attempt leaves the window). If all have room,
  the attempt is recorded in all of them and the next scope is decided.
* So the IP is counted before the account: a client already blocked by its
  IP cannot spend a victim's account budget, and an attempt admitted by its
  IP but refused by the account still counts against the IP.

On Valkey the whole decision, both scopes and the numbers for the RateLimit
headers, is one ``EVALSHA``: one round trip, atomic, so two instances can
never both take the last slot, and one deadline covers it. The script reads
Valkey's own clock (``TIME``), so instances whose clocks disagree still share
one window. Each key is a sorted set scored by milliseconds, with a random
member per attempt, and expires one window after its newest entry.

On a Valkey Cluster a script may touch only keys of one slot (else
``CROSSSLOT``), and a decision reads the IP's windows and the account's
together. So every key of one limiter carries the same hash tag, the
limiter's name in braces in its prefix (``bastion:{rl}:...``,
``bastion:{rl-signup}:...``, ``bastion:{rl-reset}:...``): the sign-in
decisions live in one slot, the sign-up and the password-reset ones in
others. That keeps each decision one atomic round trip
on every topology, at the price of not spreading the sign-in counts over the
Cluster's primaries (they are small and few next to the cache's keys, which
spread as usual).
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from limits import RateLimitItem

from bastion.ratelimit._decision import Decision, Scope

#: The scopes' order in a decision, and their numbers in the script's reply.
SCOPES: tuple[Scope, ...] = ("ip", "account")


@dataclass(frozen=True, slots=True)
class Check:
    """One limit of one scope: its storage key, how many attempts, over how many ms."""

    scope: Scope
    key: str
    amount: int
    window_ms: int

    @classmethod
    def of(cls, scope: Scope, item: RateLimitItem, identifier: str, prefix: str) -> Check:
        """The check for ``item`` on ``identifier``, under ``prefix`` (``bastion:{rl}``)."""
        return cls(
            scope,
            f"{prefix}:{item.key_for(scope, identifier)}",
            item.amount,
            item.get_expiry() * 1000,
        )


SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local member = ARGV[1]
local n_ip = tonumber(ARGV[2])
local n = #KEYS
local best_limit, best_remaining, best_reset = 0, -1, 0
local i = 1
while i <= n do
  local last = n
  if i <= n_ip then last = n_ip end
  local counts = {}
  for k = i, last do
    local amount = tonumber(ARGV[1 + 2 * k])
    local window = tonumber(ARGV[2 + 2 * k])
    redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', now - window)
    local count = redis.call('ZCARD', KEYS[k])
    if count >= amount then
      local oldest = redis.call('ZRANGE', KEYS[k], 0, 0, 'WITHSCORES')
      local scope = 2
      if k <= n_ip then scope = 1 end
      return {0, scope, amount, 0, tonumber(oldest[2]) + window - now}
    end
    counts[k] = count
  end
  for k = i, last do
    local amount = tonumber(ARGV[1 + 2 * k])
    local window = tonumber(ARGV[2 + 2 * k])
    redis.call('ZADD', KEYS[k], now, member)
    redis.call('PEXPIRE', KEYS[k], window)
    local remaining = amount - counts[k] - 1
    if best_remaining < 0 or remaining < best_remaining then
      local oldest = redis.call('ZRANGE', KEYS[k], 0, 0, 'WITHSCORES')
      best_limit, best_remaining = amount, remaining
      best_reset = tonumber(oldest[2]) + window - now
    end
  end
  i = last + 1
end
return {1, 0, best_limit, best_remaining, best_reset}
"""

SCRIPT_SHA = hashlib.sha1(SCRIPT.encode(), usedforsecurity=False).hexdigest()

#: The same windows, read without recording anything: ``{count, oldest_ms}`` per key.
PEEK_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for k = 1, #KEYS do
  local window = tonumber(ARGV[k])
  local count = redis.call('ZCOUNT', KEYS[k], '(' .. (now - window), '+inf')
  local oldest = redis.call('ZRANGEBYSCORE', KEYS[k], '(' .. (now - window), '+inf',
                            'WITHSCORES', 'LIMIT', 0, 1)
  local reset = window
  if oldest[2] then reset = tonumber(oldest[2]) + window - now end
  out[2 * k - 1] = count
  out[2 * k] = reset
end
return out
"""


def peek_decisions(
    checks: Sequence[Check], counts: Sequence[tuple[int, int]]
) -> dict[Scope, Decision]:
    """Per scope, the tightest limit's numbers, from each check's (count, reset_ms)."""
    best: dict[Scope, Decision] = {}
    for check, (count, reset_ms) in zip(checks, counts, strict=True):
        remaining = max(0, check.amount - count)
        decision = Decision(remaining > 0, check.scope, check.amount, remaining, max(0, reset_ms))
        if check.scope not in best or remaining < best[check.scope].remaining:
            best[check.scope] = decision
    return best


def script_args(checks: Sequence[Check], member: str) -> tuple[list[str], list[str | int]]:
    """KEYS and ARGV for :data:`SCRIPT`: the checks must list the ip scope first."""
    keys = [check.key for check in checks]
    args: list[str | int] = [member, sum(check.scope == "ip" for check in checks)]
    for check in checks:
        args += (check.amount, check.window_ms)
    return keys, args


def parse_reply(reply: object) -> Decision:
    """The script's ``{allowed, scope, limit, remaining, reset_ms}``; ValueError if malformed."""
    if not isinstance(reply, list) or len(reply) != 5 or not all(isinstance(v, int) for v in reply):
        raise ValueError(f"unexpected rate-limit script reply: {reply!r}")
    allowed, scope, limit, remaining, reset_ms = reply
    return Decision(
        allowed=bool(allowed),
        scope=SCOPES[scope - 1] if scope else None,
        limit=limit,
        remaining=max(0, remaining),
        reset_ms=max(0, reset_ms),
    )


class LocalWindows:
    """The same decision in this process's memory: the store without Valkey, and the fallback.

    Keys whose newest attempt has left its window are swept every
    ``sweep_every`` decisions, so memory is bounded by the attempts of one
    window, whatever number of clients come and go.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, sweep_every: int = 1024
    ) -> None:
        self._clock = clock
        self._sweep_every = sweep_every
        self._until_sweep = sweep_every
        self._windows: dict[str, deque[float]] = {}
        self._expires: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._windows)

    def _live(self, check: Check, now: float) -> deque[float]:
        window = self._windows.get(check.key)
        if window is None:
            window = self._windows[check.key] = deque()
        horizon = now - check.window_ms / 1000
        while window and window[0] <= horizon:
            window.popleft()
        return window

    def decide(self, checks: Sequence[Check]) -> Decision:
        now = self._clock()
        self._until_sweep -= 1
        if self._until_sweep <= 0:
            self._sweep(now)
        best: Decision | None = None
        for scope in SCOPES:
            scoped = [(check, self._live(check, now)) for check in checks if check.scope == scope]
            for check, window in scoped:
                if len(window) >= check.amount:
                    reset = window[0] + check.window_ms / 1000 - now
                    return Decision(False, scope, check.amount, 0, _ms(reset))
            for check, window in scoped:
                window.append(now)
                self._expires[check.key] = now + check.window_ms / 1000
                remaining = check.amount - len(window)
                if best is None or remaining < best.remaining:
                    reset = window[0] + check.window_ms / 1000 - now
                    best = Decision(True, None, check.amount, remaining, _ms(reset))
        assert best is not None, "a decision needs at least one check"
        return best

    def peek(self, checks: Sequence[Check]) -> dict[Scope, Decision]:
        """What :meth:`decide` would see, per scope, without recording an attempt."""
        now = self._clock()
        counts = []
        for check in checks:
            window = self._live(check, now)
            reset = window[0] + check.window_ms / 1000 - now if window else check.window_ms / 1000
            counts.append((len(window), _ms(reset)))
        return peek_decisions(checks, counts)

    def clear(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._windows.pop(key, None)
            self._expires.pop(key, None)

    def _sweep(self, now: float) -> None:
        self._until_sweep = self._sweep_every
        for key in [key for key, at in self._expires.items() if at <= now]:
            del self._expires[key]
            self._windows.pop(key, None)


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))
