"""The cache and the sign-in limit through ``valkey+sentinel://``: a primary, two replicas, three Sentinels.

In process, on one topology for the module (it costs about two seconds to
start). The killed primary and then the planned switch come last, in that
order: they change who the primary is. The same switch under a flood of sign-ins, across two app
processes, is tests/integration/load/test_failover_sentinel.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from bastion.cache import BreakerState, Cache
from bastion.cache._connection import FAILED, ValkeyConnection, ValkeyOptions
from bastion.config import load_settings
from bastion.ratelimit import SignInLimiter
from tests.conftest import make_cache
from tests.support.valkey_ha import (
    DOWN_AFTER_MS,
    FAILOVER_TIMEOUT_MS,
    ValkeySentinels,
    cli,
    wait_replicated,
)

#: The deadline of every call here; generous, as the semantics tests' are.
DEADLINE = 0.2


@pytest.fixture(scope="module")
def sentinels() -> Iterator[ValkeySentinels]:
    with ValkeySentinels() as topology:
        yield topology


async def test_cache_and_single_flight(sentinels: ValkeySentinels) -> None:
    cache = make_cache(sentinels.url, command_timeout=DEADLINE)
    assert await cache.json.set("k", {"v": [1, 2]}, 60)
    assert await cache.json.get("k") == {"v": [1, 2]}
    assert await cache.json.get_with_ttl("k") == ({"v": [1, 2]}, 60)
    loads = 0

    async def load() -> str:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.05)
        return "loaded"

    got = await asyncio.gather(*(cache.json.get_or_set("cold", 60, load) for _ in range(20)))
    assert got == ["loaded"] * 20
    assert loads == 1
    # What bastion wrote is on the primary the Sentinels name, under its prefix.
    assert cli(sentinels.primary(), "GET", "test:cold").strip() == '"loaded"'
    await cache.aclose()


async def test_sign_in_and_sign_up_limits_are_exact(sentinels: ValkeySentinels) -> None:
    """Two limiters (two instances) share one count; each decision is one script, as on one node."""
    settings = load_settings(
        VALKEY_URL=sentinels.url,
        CACHE_COMMAND_TIMEOUT_MS=200,
        SIGN_IN_RATE_LIMIT="4/minute",
        SIGN_UP_RATE_LIMIT="2/minute",
    )
    one, two = SignInLimiter.from_settings(settings), SignInLimiter.from_settings(settings)
    allowed = [(await (one, two)[i % 2].hit("192.0.2.9", f"u{i}@x")).allowed for i in range(8)]
    assert allowed == [True] * 4 + [False] * 4
    sign_up = SignInLimiter.for_sign_up(settings)
    assert [(await sign_up.hit("192.0.2.9", "")).allowed for _ in range(3)] == [True, True, False]
    assert not one.degraded
    assert not two.degraded
    assert not sign_up.degraded
    for limiter in (one, two, sign_up):
        await limiter.aclose()


async def test_a_killed_primary_is_a_miss_then_its_replica_serves(
    sentinels: ValkeySentinels,
) -> None:
    cache: Cache = make_cache(sentinels.url, command_timeout=DEADLINE, failures=3, cooldown=0.2)
    assert await cache.json.set("kept", "before", 60)
    wait_replicated(sentinels.primary())  # so the promoted replica has it
    old = sentinels.kill_primary()
    started = time.monotonic()
    slowest = 0.0
    while True:
        begun = time.monotonic()
        value = await cache.json.get("kept")
        slowest = max(slowest, time.monotonic() - begun)
        if value is not None:
            break
        assert time.monotonic() - started < 10, "the replica never took over"
        await asyncio.sleep(0.02)
    assert value == "before"
    # Never longer than a deadline (and a loop turn) while the Sentinels decide.
    assert slowest < DEADLINE + 0.1
    # Detection plus promotion, with room for a busy machine.
    assert time.monotonic() - started < (DOWN_AFTER_MS + FAILOVER_TIMEOUT_MS) / 1000 + 3
    # The read may come from the replica being promoted before every Sentinel says so.
    sentinels.wait_for_new_primary(old, timeout=5)
    assert cache.breaker_state is BreakerState.CLOSED
    await cache.aclose()


async def _write_until(
    connection: ValkeyConnection, stop: asyncio.Event, switched: asyncio.Event
) -> tuple[int, int, int]:
    """Acknowledged writes, failed ones, and acknowledged ones after ``switched``."""
    acked = failed = after = 0
    while not stop.is_set():
        if await connection.call("incr", lambda c: c.incr("switch")) is FAILED:
            failed += 1
            await asyncio.sleep(0.005)
        else:
            acked += 1
            after += switched.is_set()
    return acked, failed, after


async def test_a_planned_switch_loses_no_write(sentinels: ValkeySentinels) -> None:
    """``SENTINEL FAILOVER`` while four tasks write: every acknowledged write is on the new primary.

    Without following the Sentinels' announcements the old primary stays
    writable for seconds after the replica took over, and what it took is
    thrown away when it resyncs (measured: 23,420 of 44,899 writes lost).
    """
    connection = ValkeyConnection(ValkeyOptions(sentinels.url, DEADLINE, breaker_failures=10**6))
    stop, switched = asyncio.Event(), asyncio.Event()
    writers = [asyncio.create_task(_write_until(connection, stop, switched)) for _ in range(4)]
    await asyncio.sleep(0.3)
    old = sentinels.failover()
    await asyncio.to_thread(sentinels.wait_for_new_primary, old)
    switched.set()
    await asyncio.sleep(0.3)
    stop.set()
    results = await asyncio.gather(*writers)
    acked, failed, after = (sum(r[i] for r in results) for i in range(3))
    new = sentinels.primary()
    assert new != old
    # Every acknowledged write is there; a failed one may be too (it failed after it was sent).
    # The failed calls were in flight when the promotion was announced, or met the
    # replica in the moment before it became the primary (READONLY).
    assert acked <= int(cli(new, "GET", "switch")) <= acked + failed
    assert after > 0, "the writes did not resume on the new primary"
    assert connection.state is BreakerState.CLOSED
    await connection.aclose()
