"""The shared sign-in rate limiter: per client IP and per account, on Valkey when there is one.

Strategy: a moving window (see :mod:`bastion.ratelimit._window`). It keeps the
time of each counted attempt and admits an attempt only if fewer than the
limit fall inside the last window, so "5 per 15 minutes" means exactly that at
every instant, with no burst at a window boundary. A sliding-window counter
would be cheaper per key but approximates the previous window by weighting;
a sign-in limit is small, where exactness is worth more than a few bytes.

One decision is one Valkey round trip: a Lua script checks and records the
per-IP and the per-account limits together and returns the numbers for the
RateLimit headers. Refused attempts record nothing, so hammering a blocked
bucket never pushes its reset further out.

What a refused attempt costs: next to nothing. Because a refused attempt is
not counted, a refusal *by IP* that Valkey decided stays true until its reset
time, whatever any instance does meanwhile (every attempt from that IP is
refused at the IP step and records nothing). So the limiter remembers such a
refusal until its reset and answers the client's next attempts from memory,
with no round trip; an attacker's flood from one address costs one dict
lookup per request. Only :meth:`SignInLimiter.reset` lifts a lockout early,
and it forgets the remembered refusal on this instance; another instance may
keep refusing that client until the reset time it was told.

Fail policy (declared): if Valkey fails (down, refused, hung, killed) the
decision is made by an in-process moving window with the same limits. It
never raises, never waits for Valkey longer than ``CACHE_COMMAND_TIMEOUT_MS``
(plus one turn of the event loop, see :mod:`bastion.cache._deadline`), and
never stops limiting; limits are then per process instead of shared. The
local counts start empty. One warning is logged when the fallback starts and
one info line when Valkey answers again; each fallback decision is reported
to the ``on_event`` hook. A circuit breaker named ``ratelimit`` (the cache's
thresholds, ``CACHE_BREAKER_*``) stops paying the timeout when Valkey is
failing and lets one probe through after each ``CACHE_BREAKER_COOLDOWN_MS``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from typing import Literal

from bastion._parse.ratelimit import parse_rate_limit
from bastion.cache._breaker import CircuitBreaker
from bastion.cache._connection import FAILED, ValkeyConnection, ValkeyOptions
from bastion.config import Settings
from bastion.hardening._proxy import client_key
from bastion.ratelimit._decision import Decision, Scope
from bastion.ratelimit._remembered import RememberedRefusals
from bastion.ratelimit._remote import decide_remote, forget_remote, peek_remote
from bastion.ratelimit._rules import account_key
from bastion.ratelimit._window import Check, LocalWindows

logger = logging.getLogger("bastion.ratelimit")

#: "hit": an attempt was refused. "fallback": the local limiter decided because Valkey failed.
RateLimitEvent = Literal["hit", "fallback"]
EventHook = Callable[[RateLimitEvent], None]


class SignInLimiter:
    """Counts sign-in attempts per client IP and per account, and decides each one.

    Build it with :meth:`from_settings`; keep one per process (it holds the
    Valkey client, the breaker and the fallback counts) and call
    :meth:`aclose` at shutdown. ``valkey=None`` counts in this process only.
    """

    def __init__(
        self,
        ip_limits: str,
        account_limits: str,
        *,
        valkey: ValkeyOptions | None = None,
        key_prefix: str = "bastion:{rl}",
        on_event: EventHook | None = None,
    ) -> None:
        self.ip_limits = parse_rate_limit(ip_limits)
        # No account limits (an empty string): the limiter counts by client IP only.
        self.account_limits = parse_rate_limit(account_limits) if account_limits else ()
        self.key_prefix = key_prefix
        self.on_event = on_event
        self._local = LocalWindows()
        self._refusals = RememberedRefusals()
        self._turns: dict[str, _Turn] = {}
        # Consulted only when there is a Valkey; without one it simply stays closed.
        # This class logs one line per outage, so the breaker's own lines are off.
        self.breaker: CircuitBreaker = (
            valkey.breaker("ratelimit", log_transitions=False)
            if valkey is not None
            else CircuitBreaker(1, 0.0, name="ratelimit", log_transitions=False)
        )
        self._remote = (
            ValkeyConnection(valkey, breaker=self.breaker) if valkey is not None else None
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
            # The braces are a hash tag: one slot per limiter on a Cluster (see _window).
            key_prefix=settings.CACHE_KEY_PREFIX + "{rl}",
            on_event=on_event,
        )

    @classmethod
    def for_sign_up(cls, settings: Settings, on_event: EventHook | None = None) -> SignInLimiter:
        """Sign-ups per client IP (``SIGN_UP_RATE_LIMIT``): a budget of its own.

        Its keys live apart from the sign-in ones, so creating accounts never
        spends a client's sign-in attempts, and the reverse.
        """
        return cls(
            settings.SIGN_UP_RATE_LIMIT,
            "",
            valkey=ValkeyOptions.from_settings(settings),
            key_prefix=settings.CACHE_KEY_PREFIX + "{rl-signup}",
            on_event=on_event,
        )

    @classmethod
    def for_password_reset(
        cls, settings: Settings, on_event: EventHook | None = None
    ) -> SignInLimiter:
        """Password-reset requests per client IP and per account (``PASSWORD_RESET_RATE_LIMIT``).

        Both scopes take the same limit. The account is whatever email was
        asked for, known or not, so the count says nothing about which
        accounts exist; it stops one mailbox being flooded from many
        addresses, as the per-IP count stops one address flooding many.
        Its keys live apart from the sign-in and sign-up ones: asking for a
        reset spends no sign-in attempt.
        """
        return cls(
            settings.PASSWORD_RESET_RATE_LIMIT,
            settings.PASSWORD_RESET_RATE_LIMIT,
            valkey=ValkeyOptions.from_settings(settings),
            key_prefix=settings.CACHE_KEY_PREFIX + "{rl-reset}",
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

    def _checks(self, client: str, account: str) -> list[Check]:
        prefix = self.key_prefix
        return [
            *(Check.of("ip", item, client, prefix) for item in self.ip_limits),
            *(Check.of("account", item, account, prefix) for item in self.account_limits),
        ]

    async def hit(self, client_ip: str, account: str) -> Decision:
        """Count one attempt against both limits and decide it. Never raises on a Valkey failure.

        Call it for every attempt before checking the password, successful or
        not (as django-ratelimit counts), and answer 429 with
        :func:`~bastion.ratelimit.rate_limit_headers` when ``allowed`` is False.
        """
        client = client_key(client_ip)  # IPv6 by its /64: one subscriber holds a /64
        if self._remote is None:
            decision = self._local.decide(self._checks(client, account_key(account)))
        else:
            remembered = self._refusals.get(client)
            if remembered is not None:
                self._emit("hit")
                return remembered
            decision = await self._one_at_a_time(client, account_key(account))
        if not decision.allowed:
            self._emit("hit")
        return decision

    async def _one_at_a_time(self, client: str, account: str) -> Decision:
        """One Valkey decision at a time per client on this instance.

        A flood from one address arrives as dozens of attempts at once, and
        again the instant its lockout ends. Asked all together, they queue on
        a saturated event loop; the late ones miss their deadline and fall back
        to the local count, which knows nothing of the shared one and admits
        them: a password check the shared limit would have refused (measured:
        9 such decisions in 304,000 under a 20 s flood). Decided in turn, each
        one's deadline starts when its call does, and once Valkey refuses, the
        rest are answered from the remembered refusal with no call at all.
        Other clients are not held up: the turn is per client key.
        """
        turn = self._turns.get(client)
        if turn is None:
            turn = self._turns[client] = _Turn()
        turn.users += 1
        try:
            async with turn.lock:
                remembered = self._refusals.get(client)
                if remembered is not None:
                    return remembered
                return await self._shared_decision(client, account)
        finally:
            turn.users -= 1
            if turn.users == 0:
                del self._turns[client]

    async def _shared_decision(self, client: str, account: str) -> Decision:
        """Valkey's decision, or the local fallback's when Valkey failed or the breaker is open."""
        assert self._remote is not None
        checks = self._checks(client, account)
        decision = await decide_remote(self._remote, checks, os.urandom(8).hex())
        if decision is FAILED:
            self._fell_back(self._remote.last_error)
            self._emit("fallback")
            return dataclasses.replace(self._local.decide(checks), degraded=True)
        self._recovered()
        if decision.scope == "ip":
            self._refusals.remember(client, decision)
        return decision

    def _fell_back(self, reason: str) -> None:
        if not self._degraded:
            self._degraded = True
            logger.warning(
                "sign-in rate limit: Valkey failed (%s); limiting in this process only "
                "until it answers again",
                reason,
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

    async def peek(self, client_ip: str, account: str) -> dict[Scope, Decision]:
        """Where this IP and this account stand, per scope, without counting an attempt.

        For a page that shows a user their remaining attempts (the example's
        sign-in sandbox). Read from Valkey when it answers, else locally.
        """
        checks = self._checks(client_key(client_ip), account_key(account))
        if self._remote is not None:
            remote = await peek_remote(self._remote, checks)
            if remote is not FAILED:
                return remote
        return self._local.peek(checks)

    async def reset(self, client_ip: str, account: str) -> None:
        """Forget the counts for this IP (its /64) and this account, in Valkey and locally.

        For tests and for an administrator lifting a lockout. Valkey is
        cleared in one call under the same deadline and breaker as :meth:`hit`;
        if it cannot be reached, the local counts are still cleared.
        """
        client = client_key(client_ip)
        keys: Sequence[str] = [check.key for check in self._checks(client, account_key(account))]
        self._local.clear(keys)
        self._refusals.forget(client)
        if self._remote is None:
            return
        if await forget_remote(self._remote, keys) is FAILED:
            self._fell_back(self._remote.last_error)
        else:
            self._recovered()

    async def aclose(self) -> None:
        """Close the Valkey client."""
        if self._remote is not None:
            await self._remote.aclose()


class _Turn:
    """The lock that orders one client's Valkey decisions, and how many wait on it."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0
