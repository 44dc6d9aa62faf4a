"""The one Valkey client of this process, and the guard every command passes through.

This is the only module that talks to Valkey. It owns the three things that
keep a sick Valkey from becoming a sick app: a hard per-call deadline that
covers connecting and the command together (and does not mistake a late event
loop for a late Valkey), and the circuit breaker. Everything above it sees a
result or ``FAILED``, never an exception.

valkey-py is imported when a connection is configured, not with this module: an
app on the embedded default (no ``VALKEY_URL``) never configures one, and the
client library is a noticeable share of ``import bastion``.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias, TypeVar

from bastion.cache._breaker import BreakerState, CircuitBreaker
from bastion.cache._clients import Client, PrimaryWatch, make_client, repair_cluster
from bastion.cache._deadline import SharedDeadline
from bastion.config import Settings

logger = logging.getLogger("bastion.cache")

T = TypeVar("T")


class _Failed(enum.Enum):
    """Sentinel for "the call did not happen": down, hung, refused or breaker open.

    An enum member, so that ``result is FAILED`` narrows the type for checkers.
    """

    FAILED = "FAILED"


FAILED: Final = _Failed.FAILED
#: The type of :data:`FAILED`, for callers' annotations (``T | Failed``).
Failed = Literal[_Failed.FAILED]

ValkeyCall: TypeAlias = "Callable[[Client], Awaitable[T]]"


@dataclass(frozen=True, slots=True)
class ValkeyOptions:
    """How to reach Valkey and how long to wait for it (seconds)."""

    url: str
    command_timeout: float = 0.05
    breaker_failures: int = 5
    breaker_cooldown: float = 5.0
    breaker_failure_rate: float = 0.5
    breaker_window: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> ValkeyOptions | None:
        """None when ``VALKEY_URL`` is unset: every Valkey user then runs without one."""
        if settings.VALKEY_URL is None:
            return None
        return cls(
            url=settings.VALKEY_URL,
            command_timeout=settings.CACHE_COMMAND_TIMEOUT_MS / 1000,
            breaker_failures=settings.CACHE_BREAKER_FAILURES,
            breaker_cooldown=settings.CACHE_BREAKER_COOLDOWN_MS / 1000,
            breaker_failure_rate=settings.CACHE_BREAKER_FAILURE_RATE,
            breaker_window=settings.CACHE_BREAKER_WINDOW_MS / 1000,
        )

    def breaker(self, name: str, *, log_transitions: bool = True) -> CircuitBreaker:
        """A breaker with these thresholds; each user of Valkey gets its own, by name."""
        return CircuitBreaker(
            self.breaker_failures,
            self.breaker_cooldown,
            failure_rate=self.breaker_failure_rate,
            window=self.breaker_window,
            name=name,
            log_transitions=log_transitions,
        )


class ValkeyConnection:
    """A lazily created client bound to the running event loop, plus the breaker.

    The client is created on first use, not at import or start-up, so that an
    app whose Valkey is down still starts, and so that the client belongs to
    the loop that actually serves requests. If the loop changes (a test runner
    that makes a loop per test, say) a fresh client is made for the new loop.
    """

    def __init__(
        self,
        options: ValkeyOptions,
        on_error: Callable[[], None] | None = None,
        *,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        """``breaker``: the one to judge this connection's calls (default: one named "valkey")."""
        self.options = options
        self.on_error = on_error
        self.breaker = breaker or options.breaker("valkey")
        # valkey-py comes in with the first connection configured (see the module's doc):
        # here, not in the first call, whose deadline must not pay for an import.
        import valkey.asyncio  # noqa: PLC0415, F401

        self._deadline = SharedDeadline(options.command_timeout)
        #: The exception type of the latest failed call (a name only: never a message).
        self.last_error = ""
        self._client: Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watch: PrimaryWatch | None = None

    @property
    def state(self) -> BreakerState:
        return self.breaker.state

    def _get_client(self) -> Client:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            # No valkey-py timers at all: ``call`` bounds every command with one
            # deadline that covers connecting too. valkey-py's own (a wait_for on
            # every send, a timeout on every read, a connect timeout) would only
            # repeat it at a cost on every call, and, being plain asyncio
            # timeouts, they fire on a late event loop even when Valkey answered
            # in time; the deadline gives the loop its turn first (see
            # bastion.cache._deadline). Measured under 64 saturating connections:
            # the 30 ms connect timer was the only source of misses left.
            # The same holds for a Sentinel-managed primary and a Cluster
            # (bastion.cache._clients).
            client = make_client(self.options.url)
            self._client, self._loop = client, loop
            self._watch = PrimaryWatch.of(client)
            if self._watch is not None:
                self._watch.start()
        return self._client

    async def call(self, name: str, command: ValkeyCall[T]) -> T | Failed:
        """Run one command under the deadline and the breaker; never raise.

        The deadline is the outer bound: socket timeouts alone would let a
        connect and a read each take their full budget in turn. It behaves as
        ``asyncio.timeout(command_timeout)`` around the call, on one shared
        timer (see :mod:`bastion.cache._deadline`); a caller's own
        cancellation still propagates.
        """
        if not self.breaker.allow():
            return FAILED
        deadline = self._deadline
        pending = deadline.enter()
        try:
            result = await command(self._get_client())
        except asyncio.CancelledError:
            if not deadline.exit(pending, cancelled=True):
                self.breaker.abandon()  # the caller went away: no verdict on Valkey
                raise
            return self._failed(name, "TimeoutError")
        except Exception as exc:
            deadline.exit(pending, cancelled=False)
            if self._client is not None:
                repair_cluster(self._client, self.options.url)
            return self._failed(name, type(exc).__name__)
        deadline.exit(pending, cancelled=False)
        self.breaker.record_success()
        return result

    def _failed(self, name: str, reason: str) -> Failed:
        self.last_error = reason
        self.breaker.record_failure()
        logger.debug("cache %s failed: %s", name, reason)
        if self.on_error is not None:
            self.on_error()
        return FAILED

    async def aclose(self) -> None:
        """Close the client if it belongs to the running loop; forget it either way."""
        client, loop, watch = self._client, self._loop, self._watch
        self._client = self._loop = self._watch = None
        if client is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - closed outside any loop
            return
        if loop is running:
            try:
                if watch is not None:
                    await watch.aclose()
                await client.aclose()
            except Exception:
                logger.debug("cache client close failed", exc_info=True)
