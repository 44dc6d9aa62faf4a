"""The sign-in rate limiter on a real Valkey, in memory, and through Valkey faults.

Nothing is mocked: Valkey is the real server (killed and restarted where a test
says so), a hung Valkey is a TCP peer that never answers, and time is the wall
clock. Limits are chosen small so that every test trips them in a few calls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import pytest
import valkey

from bastion.config import Settings, load_settings
from bastion.ratelimit import Decision, SignInLimiter, rate_limit_headers
from bastion.ratelimit._limiter import RateLimitEvent
from tests.support.servers import HungServer, ValkeyServer
from tests.support.valkey_ha import Killable

LOGGER = "bastion.ratelimit"

MakeLimiter = Callable[..., SignInLimiter]


@pytest.fixture(autouse=True)
def _no_limit_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's shell must not change the limits these tests count against."""
    for name in ("SIGN_IN_RATE_LIMIT", "SIGN_IN_ACCOUNT_RATE_LIMIT", "CACHE_KEY_PREFIX"):
        monkeypatch.delenv(name, raising=False)


def make_settings(url: str | None, **overrides: Any) -> Settings:
    """Generous Valkey timeouts by default, so semantics tests never flake on a busy machine."""
    values: dict[str, Any] = {
        "VALKEY_URL": url,
        "SIGN_IN_RATE_LIMIT": "100/minute",
        "SIGN_IN_ACCOUNT_RATE_LIMIT": "100/minute",
        "CACHE_COMMAND_TIMEOUT_MS": 500,
        "CACHE_CONNECT_TIMEOUT_MS": 500,
        "CACHE_BREAKER_FAILURES": 3,
        "CACHE_BREAKER_COOLDOWN_MS": 60_000,
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture
async def make_limiter() -> AsyncIterator[MakeLimiter]:
    """Build limiters from settings; every one is closed at teardown."""
    made: list[SignInLimiter] = []

    def make(
        url: str | None,
        on_event: Callable[[RateLimitEvent], None] | None = None,
        **overrides: Any,
    ) -> SignInLimiter:
        limiter = SignInLimiter.from_settings(make_settings(url, **overrides), on_event=on_event)
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.aclose()


def warnings_from(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


# -- limits on a real Valkey ---------------------------------------------------------------


async def test_ip_limit_trips_at_exactly_the_configured_count(
    make_limiter: MakeLimiter, valkey_url: str
) -> None:
    limiter = make_limiter(valkey_url, SIGN_IN_RATE_LIMIT="5/minute")
    assert limiter.shared
    decisions = [await limiter.hit("203.0.113.7", f"user{i}@example.com") for i in range(5)]
    assert all(d.allowed and not d.degraded for d in decisions)
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0]

    blocked = await limiter.hit("203.0.113.7", "someone-else@example.com")
    assert not blocked.allowed
    assert blocked.scope == "ip"
    assert (blocked.limit, blocked.remaining) == (5, 0)
    assert 1 <= blocked.reset_after <= 60
    # Another client is untouched.
    assert (await limiter.hit("203.0.113.8", "user0@example.com")).allowed


async def test_account_limit_trips_across_different_ips(
    make_limiter: MakeLimiter, valkey_url: str
) -> None:
    limiter = make_limiter(valkey_url, SIGN_IN_ACCOUNT_RATE_LIMIT="3/15minutes")
    spellings = ["alice@example.com", "Alice@Example.COM", "  alice@example.com "]
    for i, email in enumerate(spellings):
        decision = await limiter.hit(f"198.51.100.{i}", email)
        assert decision.allowed
        assert decision.remaining == 2 - i

    blocked = await limiter.hit("198.51.100.200", "ALICE@example.com")
    assert not blocked.allowed
    assert blocked.scope == "account"
    assert blocked.limit == 3
    assert 14 * 60 < blocked.reset_after <= 15 * 60
    # Another account from the same fresh IP is not blocked.
    assert (await limiter.hit("198.51.100.200", "bob@example.com")).allowed


async def test_ipv6_counts_by_64(make_limiter: MakeLimiter, valkey_url: str) -> None:
    limiter = make_limiter(valkey_url, SIGN_IN_RATE_LIMIT="2/minute")
    assert (await limiter.hit("2001:db8:1:2::1", "a@example.com")).allowed
    assert (await limiter.hit("2001:db8:1:2:ffff:ffff:ffff:fffe", "b@example.com")).allowed
    same_64 = await limiter.hit("2001:db8:1:2:abcd::9", "c@example.com")
    assert not same_64.allowed
    assert same_64.scope == "ip"

    other_64 = await limiter.hit("2001:db8:1:3::1", "d@example.com")
    assert other_64.allowed
    assert other_64.remaining == 1


async def test_headers_count_down_and_retry_after_only_when_blocked(
    make_limiter: MakeLimiter, valkey_url: str
) -> None:
    limiter = make_limiter(valkey_url, SIGN_IN_RATE_LIMIT="3/minute")
    seen: list[dict[str, str]] = []
    for _ in range(3):
        seen.append(rate_limit_headers(await limiter.hit("192.0.2.1", "carol@example.com")))
    assert [h["RateLimit-Remaining"] for h in seen] == ["2", "1", "0"]
    assert all(h["RateLimit-Limit"] == "3" for h in seen)
    assert all("Retry-After" not in h for h in seen)
    assert all(1 <= int(h["RateLimit-Reset"]) <= 60 for h in seen)

    blocked = rate_limit_headers(await limiter.hit("192.0.2.1", "carol@example.com"))
    assert int(blocked["Retry-After"]) >= 1
    assert blocked["Retry-After"] == blocked["RateLimit-Reset"]
    assert blocked["RateLimit-Remaining"] == "0"


async def test_blocked_attempts_do_not_extend_the_lockout(
    make_limiter: MakeLimiter, valkey_url: str
) -> None:
    limiter = make_limiter(valkey_url, SIGN_IN_RATE_LIMIT="2/second")
    start = time.monotonic()
    assert (await limiter.hit("192.0.2.9", "dave@example.com")).allowed
    assert (await limiter.hit("192.0.2.9", "dave@example.com")).allowed
    refused = 0
    while time.monotonic() - start < 0.6:  # hammer the blocked bucket
        refused += not (await limiter.hit("192.0.2.9", "dave@example.com")).allowed
        await asyncio.sleep(0.02)
    assert refused >= 10
    await asyncio.sleep(max(0.0, start + 1.15 - time.monotonic()))
    assert (await limiter.hit("192.0.2.9", "dave@example.com")).allowed


async def test_two_instances_on_one_valkey_share_the_count(
    make_limiter: MakeLimiter, valkey_url: str
) -> None:
    first = make_limiter(valkey_url, SIGN_IN_RATE_LIMIT="6/minute")
    second = make_limiter(valkey_url, SIGN_IN_RATE_LIMIT="6/minute")
    allowed = 0
    for i in range(12):
        limiter = first if i % 2 == 0 else second
        allowed += (await limiter.hit("203.0.113.50", f"u{i}@example.com")).allowed
    assert allowed == 6

    # Concurrent attempts from both instances cannot both take the last slot.
    await first.reset("203.0.113.51", "x@example.com")
    results = await asyncio.gather(
        *((first if i % 2 else second).hit("203.0.113.51", f"v{i}@example.com") for i in range(20))
    )
    assert sum(d.allowed for d in results) == 6


async def test_keys_live_under_the_prefix_and_hold_no_email(
    make_limiter: MakeLimiter, valkey_url: str, raw_valkey: valkey.Valkey
) -> None:
    limiter = make_limiter(valkey_url, CACHE_KEY_PREFIX="site1:")
    await limiter.hit("192.0.2.33", "erin@example.com")
    keys = sorted(k.decode() for k in cast("list[bytes]", raw_valkey.keys("*")))
    assert len(keys) == 2
    # The braces: one hash tag for every key of a decision (one slot on a Cluster).
    assert all(k.startswith("site1:{rl}:signin/") for k in keys)
    assert not any("erin" in k or "example" in k for k in keys)
    assert any("/ip/192.0.2.33/" in k for k in keys)


async def test_reset_lifts_both_limits(make_limiter: MakeLimiter, valkey_url: str) -> None:
    limiter = make_limiter(
        valkey_url, SIGN_IN_RATE_LIMIT="1/minute", SIGN_IN_ACCOUNT_RATE_LIMIT="1/hour"
    )
    assert (await limiter.hit("192.0.2.40", "frank@example.com")).allowed
    assert not (await limiter.hit("192.0.2.40", "frank@example.com")).allowed
    await limiter.reset("192.0.2.40", "Frank@Example.com")
    assert (await limiter.hit("192.0.2.40", "frank@example.com")).allowed


async def test_a_broken_metrics_hook_never_fails_a_sign_in(
    make_limiter: MakeLimiter, valkey_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: RateLimitEvent) -> None:
        raise RuntimeError(event)

    limiter = make_limiter(valkey_url, on_event=broken, SIGN_IN_RATE_LIMIT="1/minute")
    with caplog.at_level(logging.INFO, logger=LOGGER):
        decisions = [await limiter.hit("192.0.2.41", "g@example.com") for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, False, False]
    records = [r for r in caplog.records if r.name == LOGGER]
    assert [r.levelno for r in records] == [logging.ERROR]  # logged once, not per call


# -- without Valkey ------------------------------------------------------------------------


async def test_memory_mode_without_valkey_url(make_limiter: MakeLimiter) -> None:
    events: list[RateLimitEvent] = []
    limiter = make_limiter(None, on_event=events.append, SIGN_IN_RATE_LIMIT="3/minute")
    assert not limiter.shared
    decisions = [await limiter.hit("192.0.2.50", "h@example.com") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert not any(d.degraded for d in decisions)  # memory is the store, not a fallback
    assert decisions[-1].scope == "ip"
    assert events == ["hit"]

    await limiter.reset("192.0.2.50", "h@example.com")
    assert (await limiter.hit("192.0.2.50", "h@example.com")).allowed


async def test_default_settings_are_ten_per_ip_and_five_per_account() -> None:
    limiter = SignInLimiter.from_settings(load_settings())
    try:
        account = [await limiter.hit(f"192.0.2.{60 + i}", "ivy@example.com") for i in range(6)]
        assert [d.allowed for d in account] == [True] * 5 + [False]
        assert account[-1].scope == "account"
        ip = [await limiter.hit("192.0.2.99", f"p{i}@example.com") for i in range(11)]
        assert [d.allowed for d in ip] == [True] * 10 + [False]
        assert ip[-1].scope == "ip"
    finally:
        await limiter.aclose()


# -- Valkey faults -------------------------------------------------------------------------


async def test_valkey_killed_mid_run_falls_back_and_keeps_limiting(
    make_limiter: MakeLimiter, killable: Killable, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[RateLimitEvent] = []
    limiter = make_limiter(killable.url, on_event=events.append, SIGN_IN_RATE_LIMIT="4/minute")
    for _ in range(2):
        assert not (await limiter.hit("192.0.2.70", "jack@example.com")).degraded

    killable.kill()
    with caplog.at_level(logging.INFO):
        decisions: list[Decision] = []
        for _ in range(8):
            decisions.append(await limiter.hit("192.0.2.70", "jack@example.com"))

    assert all(d.degraded for d in decisions)
    assert limiter.degraded
    # The local counts start empty, then the same limit holds.
    assert [d.allowed for d in decisions] == [True] * 4 + [False] * 4
    assert all(d.scope == "ip" for d in decisions[4:])
    assert len(warnings_from(caplog)) == 1
    (warning,) = warnings_from(caplog)
    assert warning.name == LOGGER
    assert "Valkey failed" in warning.getMessage()
    assert events.count("fallback") == 8
    assert events.count("hit") == 4


async def test_refused_valkey_falls_back_from_the_start(
    make_limiter: MakeLimiter, refused: str, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[RateLimitEvent] = []
    limiter = make_limiter(refused, on_event=events.append, SIGN_IN_RATE_LIMIT="2/minute")
    with caplog.at_level(logging.INFO):
        decisions = [await limiter.hit("192.0.2.80", "kim@example.com") for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, False]
    assert all(d.degraded for d in decisions)
    assert len(warnings_from(caplog)) == 1
    assert events == ["fallback", "fallback", "fallback", "hit"]


async def test_hung_valkey_costs_at_most_one_deadline_per_hit(
    make_limiter: MakeLimiter,
    hung_server: HungServer,
    hung: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter = make_limiter(
        hung,
        SIGN_IN_RATE_LIMIT="3/minute",
        CACHE_COMMAND_TIMEOUT_MS=50,
        CACHE_CONNECT_TIMEOUT_MS=30,
        CACHE_BREAKER_FAILURES=3,
    )
    timings: list[float] = []
    decisions: list[Decision] = []
    with caplog.at_level(logging.INFO):
        for _ in range(6):
            start = time.perf_counter()
            decisions.append(await limiter.hit("192.0.2.90", "lee@example.com"))
            timings.append(time.perf_counter() - start)

    assert max(timings) <= 0.050 + 0.050, timings
    assert min(timings[:3]) >= 0.045  # the first three waited for the deadline...
    assert max(timings[3:]) < 0.010  # ...then the breaker stopped paying it
    assert [d.allowed for d in decisions] == [True, True, True, False, False, False]
    assert all(d.degraded for d in decisions)
    assert hung_server.accepted >= 1
    assert len(warnings_from(caplog)) == 1


async def test_back_to_valkey_after_the_cool_off(
    make_limiter: MakeLimiter,
    valkey_server: ValkeyServer,
    valkey_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[RateLimitEvent] = []
    limiter = make_limiter(
        valkey_url,
        on_event=events.append,
        CACHE_BREAKER_FAILURES=1,
        CACHE_BREAKER_COOLDOWN_MS=300,
    )
    assert not (await limiter.hit("192.0.2.100", "mo@example.com")).degraded
    valkey_server.kill()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert (await limiter.hit("192.0.2.100", "mo@example.com")).degraded
        valkey_server.start()
        # Within the cool-off the breaker does not try, even though Valkey is back.
        assert (await limiter.hit("192.0.2.100", "mo@example.com")).degraded
        await asyncio.sleep(0.35)
        back = await limiter.hit("192.0.2.100", "mo@example.com")
        later = await limiter.hit("192.0.2.100", "mo@example.com")

    assert not back.degraded
    assert not later.degraded
    assert not limiter.degraded
    levels = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOGGER]
    assert [level for level, _ in levels] == [logging.WARNING, logging.INFO]
    assert "answers again" in levels[1][1]
    assert events == ["fallback", "fallback"]


# -- peeking -------------------------------------------------------------------------------


@pytest.mark.parametrize("store", ["valkey", "memory"])
async def test_peek_reads_what_is_left_without_counting(
    make_limiter: MakeLimiter, valkey_url: str, store: str
) -> None:
    limiter = make_limiter(
        valkey_url if store == "valkey" else None,
        SIGN_IN_RATE_LIMIT="3/minute",
        SIGN_IN_ACCOUNT_RATE_LIMIT="5/minute",
    )
    fresh = await limiter.peek("192.0.2.120", "peek@example.com")
    assert {scope: (d.limit, d.remaining) for scope, d in fresh.items()} == {
        "ip": (3, 3),
        "account": (5, 5),
    }
    for _ in range(2):
        await limiter.hit("192.0.2.120", "peek@example.com")
    for _ in range(5):  # peeking spends nothing
        seen = await limiter.peek("192.0.2.120", "peek@example.com")
    assert (seen["ip"].remaining, seen["account"].remaining) == (1, 3)
    assert 1 <= seen["ip"].reset_after <= 60
    assert (await limiter.hit("192.0.2.120", "peek@example.com")).allowed
    assert not (await limiter.hit("192.0.2.120", "peek@example.com")).allowed
    assert (await limiter.peek("192.0.2.120", "peek@example.com"))["ip"].remaining == 0


async def test_a_burst_from_one_client_is_decided_in_turn(
    make_limiter: MakeLimiter, valkey_url: str, raw_valkey: valkey.Valkey
) -> None:
    """64 attempts at once: the limit's worth reach Valkey, one more learns the refusal, no more."""
    limiter = make_limiter(valkey_url, SIGN_IN_RATE_LIMIT="10/minute")
    await limiter.hit("192.0.2.200", "warm@example.com")  # loads the script
    raw_valkey.config_resetstat()
    decisions = await asyncio.gather(
        *(limiter.hit("192.0.2.201", f"u{i}@example.com") for i in range(64))
    )
    assert sum(d.allowed for d in decisions) == 10
    assert not any(d.degraded for d in decisions)
    stats = cast("dict[str, Any]", raw_valkey.info("commandstats"))
    assert stats["cmdstat_evalsha"]["calls"] == 11
