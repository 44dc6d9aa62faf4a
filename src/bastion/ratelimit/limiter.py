"""The shared sign-in rate limiter: per client IP and per account, on Valkey when there is one.

Strategy: ``limits``' moving window (``MovingWindowRateLimiter``). It keeps the
timestamp of each counted attempt and admits an attempt only if fewer than the
limit fall inside the last window, so "5 per 15 minutes" means exactly that at
every instant, with no burst at a window boundary. The sliding-window counter
is cheaper per key but approximates the previous window by weighting, so it
can trip an attempt early or late; a sign-in limit is small (tens of entries
per key), where exactness is worth more than the few bytes. On Valkey the
check-and-record is one Lua script, so instances sharing a Valkey cannot both
take the last slot.

What a blocked attempt costs: nothing. The moving window records an attempt
only when it is admitted, so hammering a blocked bucket never pushes its
reset further out; the lockout ends when the oldest counted attempt leaves
the window. The per-IP limit is checked first and the account limit only if
the IP is admitted, so a client already blocked by its IP cannot spend a
victim's account budget. An attempt admitted by its IP but refused by the
account still counts against the IP: it was an attempt from that client.
(Likewise, with several limits in one setting, such as ``10/minute;100/day``,
the ones checked before the refusing one keep the attempt; each still frees
up within its own window.)

Fail policy (declared): if Valkey fails (down, refused, hung, killed) the
decision is made by an in-process moving window with the same limits. It
never raises, never waits longer than ``CACHE_COMMAND_TIMEOUT_MS`` for Valkey,
and never stops limiting; limits are then per process instead of shared. The
local counts start empty, and an attempt Valkey recorded before failing
mid-decision is counted locally as well. One warning is logged when the
fallback starts and one info line when Valkey answers again; each fallback
decision is reported to the ``on_event`` hook. A circuit breaker (the
cache's, named ``ratelimit``) stops paying the timeout after
``CACHE_BREAKER_FAILURES`` failures in a row and lets one probe through after
each ``CACHE_BREAKER_COOLDOWN_MS``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Literal

from limits import RateLimitItem
from limits.aio.strategies import MovingWindowRateLimiter

from bastion.cache.breaker import BreakerState, CircuitBreaker
from bastion.cache.connection import ValkeyOptions
from bastion.config import Settings
from bastion.ratelimit.decision import Decision, Scope, headers
from bastion.ratelimit.rules import account_key, ip_key, parse_rate_limit
from bastion.ratelimit.storage import LocalBackend, ValkeyBackend

__all__ = ["EventHook", "RateLimitEvent", "SignInLimiter"]

logger = logging.getLogger("bastion.ratelimit")

#: "hit": an attempt was refused. "fallback": the local limiter decided because Valkey failed.
RateLimitEvent = Literal["hit", "fallback"]
EventHook = Callable[[RateLimitEvent], None]

_Checks = Sequence[tuple[Scope, Sequence[RateLimitItem], str]]


def _seconds_until(moment: float) -> int:
    """Whole seconds from now until ``moment``, rounded up, never below 1."""
    return max(1, math.ceil(moment - time.time()))


class SignInLimiter:
    """Counts sign-in attempts per client IP and per account, and decides each one.

    Build it with :meth:`from_settings`; keep one per process (it holds the
    Valkey client, the breaker and the fallback counts) and call
    :meth:`aclose` at shutdown. ``valkey=None`` counts in this process only.
    """

    headers = staticmethod(headers)

    def __init__(
        self,
        ip_limits: str,
        account_limits: str,
        *,
        valkey: ValkeyOptions | None = None,
        key_prefix: str = "bastion:rl",
        on_event: EventHook | None = None,
    ) -> None:
        self.ip_limits = parse_rate_limit(ip_limits)
        self.account_limits = parse_rate_limit(account_limits)
        self.on_event = on_event
        self._local = LocalBackend()
        self._remote = ValkeyBackend(valkey, key_prefix) if valkey is not None else None
        self._timeout = valkey.command_timeout if valkey is not None else 0.0
        # Consulted only when there is a Valkey; without one it simply stays closed.
        self.breaker = CircuitBreaker(
            valkey.breaker_failures if valkey is not None else 1,
            valkey.breaker_cooldown if valkey is not None else 0.0,
            name="ratelimit",
            log_transitions=False,  # this class logs one line per outage instead
        )
        self._degraded = False
        self._hook_failed = False

    @classmethod
    def from_settings(cls, settings: Settings, on_event: EventHook | None = None) -> SignInLimiter:
        """Limits from ``SIGN_IN_*``; Valkey, deadline and breaker from ``VALKEY_URL``/``CACHE_*``.

        One factory for the app, so every instance of a deployment counts
        under the same keys with the same limits.
        """
        return cls(
            settings.SIGN_IN_RATE_LIMIT,
            settings.SIGN_IN_ACCOUNT_RATE_LIMIT,
            valkey=ValkeyOptions.from_settings(settings),
            key_prefix=settings.CACHE_KEY_PREFIX + "rl",
            on_event=on_event,
        )

    @property
    def shared(self) -> bool:
        """True when counts live in Valkey (``VALKEY_URL`` set), shared by every instance."""
        return self._remote is not None

    @property
    def degraded(self) -> bool:
        """True from a Valkey failure until Valkey next answers: decisions are local."""
        return self._degraded

    def _checks(self, client_ip: str, account: str) -> _Checks:
        return (
            ("ip", self.ip_limits, ip_key(client_ip)),
            ("account", self.account_limits, account_key(account)),
        )

    async def hit(self, client_ip: str, account: str) -> Decision:
        """Count one attempt against both limits and decide it. Never raises on a Valkey failure.

        Call it for every attempt before checking the password, successful or
        not (as django-ratelimit counts), and answer 429 with
        :func:`headers` when ``allowed`` is False.
        """
        checks = self._checks(client_ip, account)
        decision = await self._remote_decide(checks) if self._remote is not None else None
        if decision is None:
            degraded = self._remote is not None
            decision = await _decide(self._local.strategy, checks, degraded=degraded)
            if degraded:
                self._emit("fallback")
        if not decision.allowed:
            self._emit("hit")
        return decision

    async def _remote_decide(self, checks: _Checks) -> Decision | None:
        """The Valkey decision, or None when Valkey failed or the breaker is open.

        One deadline covers the whole decision (up to four round trips), so a
        hung Valkey costs a sign-in one timeout, not one per command.
        """
        assert self._remote is not None
        if not self.breaker.allow():
            return None
        try:
            async with asyncio.timeout(self._timeout):
                decision = await _decide(self._remote.strategy(), checks, degraded=False)
        except asyncio.CancelledError:
            # The caller went away mid-call. A half-open probe must still end,
            # or the breaker would wait for it forever and never close again.
            if self.breaker.state is BreakerState.HALF_OPEN:
                self.breaker.record_failure()
            raise
        except Exception as exc:
            self.breaker.record_failure()
            self._fell_back(exc)
            return None
        self.breaker.record_success()
        self._recovered()
        return decision

    def _fell_back(self, exc: Exception) -> None:
        logger.debug("rate-limit Valkey call failed: %r", exc)
        if not self._degraded:
            self._degraded = True
            logger.warning(
                "sign-in rate limit: Valkey failed (%s); limiting in this process only "
                "until it answers again",
                type(exc).__name__,
                extra={"ratelimit_state": "local"},
            )

    def _recovered(self) -> None:
        if self._degraded:
            self._degraded = False
            logger.info(
                "sign-in rate limit: Valkey answers again; limits are shared again",
                extra={"ratelimit_state": "shared"},
            )

    def _emit(self, event: RateLimitEvent) -> None:
        """Tell the metrics hook; a broken hook is logged once and never fails a sign-in."""
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:
            if not self._hook_failed:
                self._hook_failed = True
                logger.exception("sign-in rate limit: the on_event hook raised; ignoring it")

    async def reset(self, client_ip: str, account: str) -> None:
        """Forget the counts for this IP (its /64) and this account, in Valkey and locally.

        For tests and for an administrator lifting a lockout. Valkey is
        cleared under the same deadline and breaker as :meth:`hit`; if it
        cannot be reached, the local counts are still cleared.
        """
        checks = self._checks(client_ip, account)
        await _clear(self._local.strategy, checks)
        if self._remote is None or not self.breaker.allow():
            return
        try:
            async with asyncio.timeout(self._timeout):
                await _clear(self._remote.strategy(), checks)
        except asyncio.CancelledError:
            if self.breaker.state is BreakerState.HALF_OPEN:
                self.breaker.record_failure()
            raise
        except Exception as exc:
            self.breaker.record_failure()
            self._fell_back(exc)
            return
        self.breaker.record_success()
        self._recovered()

    async def aclose(self) -> None:
        """Close the Valkey client and stop the local store's expiry task."""
        if self._remote is not None:
            await self._remote.aclose()
        await self._local.aclose()


async def _decide(
    strategy: MovingWindowRateLimiter, checks: _Checks, *, degraded: bool
) -> Decision:
    """Record the attempt limit by limit; stop at the first that refuses it."""
    for scope, items, identifier in checks:
        for item in items:
            if not await strategy.hit(item, scope, identifier):
                blocked = await strategy.get_window_stats(item, scope, identifier)
                return Decision(
                    allowed=False,
                    limit=item.amount,
                    remaining=0,
                    reset_after=_seconds_until(blocked.reset_time),
                    scope=scope,
                    degraded=degraded,
                )
    pairs = [(item, scope, identifier) for scope, items, identifier in checks for item in items]
    stats = await asyncio.gather(*(strategy.get_window_stats(*pair) for pair in pairs))
    tightest = min(
        zip((item for item, _, _ in pairs), stats, strict=True),
        key=lambda entry: max(0, entry[1].remaining),
    )
    item, window = tightest
    return Decision(
        allowed=True,
        limit=item.amount,
        remaining=max(0, window.remaining),
        reset_after=_seconds_until(window.reset_time),
        scope=None,
        degraded=degraded,
    )


async def _clear(strategy: MovingWindowRateLimiter, checks: _Checks) -> None:
    for scope, items, identifier in checks:
        for item in items:
            await strategy.clear(item, scope, identifier)
