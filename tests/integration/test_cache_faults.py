"""A down, refusing, hung or killed Valkey: never an exception, never a long wait.

Each call is timed against the configured command timeout plus a margin for a
busy two-core CI machine. The breaker tests check the stronger promise: once
open, a call does not touch the network at all.

Every test runs twice: on a plain ``redis://`` URL, and on a
``valkey+sentinel://`` URL whose Sentinel manages that same server (refused
and hung: the Sentinels themselves refuse or hang, so finding the primary is
what fails).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import pytest

from bastion.cache import BreakerState, Cache
from tests.conftest import make_cache
from tests.support.servers import HungServer
from tests.support.valkey_ha import Killable

TIMEOUT = 0.05
MARGIN = 0.05


def operations(cache: Cache) -> list[Callable[[], Awaitable[object]]]:
    return [
        lambda: cache.json.get("k"),
        lambda: cache.json.set("k", {"v": 1}, 10),
        lambda: cache.json.delete("k"),
        lambda: cache.json.ttl("k"),
        lambda: cache.json.get_with_ttl("k"),
    ]


async def timed(call: Callable[[], Awaitable[object]]) -> tuple[object, float]:
    start = time.perf_counter()
    result = await call()
    return result, time.perf_counter() - start


async def assert_degrades(cache: Cache) -> None:
    """Every operation answers "absent" within timeout + margin."""
    for call in operations(cache):
        result, elapsed = await timed(call)
        assert result in (None, False, (None, None))
        assert elapsed < TIMEOUT + MARGIN, f"{elapsed:.3f}s"


async def test_connection_refused(refused: str) -> None:
    cache = make_cache(refused, command_timeout=TIMEOUT, failures=1000)
    await assert_degrades(cache)
    await cache.aclose()


async def test_hung_server(hung_server: HungServer, hung: str) -> None:
    cache = make_cache(hung, command_timeout=TIMEOUT, failures=1000)
    await assert_degrades(cache)
    assert hung_server.accepted >= 1  # the TCP connect succeeded; only the answer never came
    await cache.aclose()


async def test_hung_server_under_concurrency(hung: str) -> None:
    cache = make_cache(hung, command_timeout=TIMEOUT, failures=1000)
    start = time.perf_counter()
    results = await asyncio.gather(*(cache.json.get(f"k{i}") for i in range(50)))
    assert results == [None] * 50
    # The deadlines run side by side, not one after another (50 in a row would
    # take 2.5 s). The bound leaves room for the loop's own work on a loaded
    # two-core machine: 50 connects and 50 teardowns took up to 270 ms in CI.
    assert time.perf_counter() - start < TIMEOUT * 10
    await cache.aclose()


async def test_server_killed_mid_test(killable: Killable) -> None:
    cache = make_cache(killable.url, command_timeout=TIMEOUT, failures=1000)
    assert await cache.json.set("k", "before", 60)
    assert await cache.json.get("k") == "before"
    killable.kill()
    await assert_degrades(cache)
    # It comes back on the same port: the same client recovers without a restart.
    killable.start()
    assert await cache.json.set("k", "after", 60)
    assert await cache.json.get("k") == "after"
    await cache.aclose()


async def test_killed_during_a_concurrent_burst(killable: Killable) -> None:
    cache = make_cache(killable.url, command_timeout=TIMEOUT, failures=1000)
    await cache.json.set("k", 1, 60)

    async def worker() -> list[float]:
        durations = []
        for _ in range(20):
            _, elapsed = await timed(lambda: cache.json.get("k"))
            durations.append(elapsed)
            await asyncio.sleep(0.005)
        return durations

    tasks = [asyncio.create_task(worker()) for _ in range(10)]
    await asyncio.sleep(0.03)
    killable.kill()
    durations = [d for per_task in await asyncio.gather(*tasks) for d in per_task]
    assert max(durations) < TIMEOUT + MARGIN
    await cache.aclose()


async def test_breaker_opens_and_calls_skip_the_network(
    hung_server: HungServer, hung: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache = make_cache(hung, command_timeout=TIMEOUT, failures=3, cooldown=60)
    with caplog.at_level(logging.INFO, logger="bastion.cache"):
        for _ in range(3):
            assert await cache.json.get("k") is None
        assert cache.breaker_state is BreakerState.OPEN
        accepted = hung_server.accepted
        durations = [(await timed(lambda: cache.json.get("k")))[1] for _ in range(200)]
    assert max(durations) < 0.002, "an open breaker must answer with no network wait"
    assert hung_server.accepted == accepted
    transitions = [r.getMessage() for r in caplog.records if "breaker" in r.getMessage()]
    assert transitions == ["cache breaker valkey: closed -> open"]
    await cache.aclose()


async def test_breaker_half_opens_then_closes_when_valkey_returns(
    killable: Killable, caplog: pytest.LogCaptureFixture
) -> None:
    cache = make_cache(killable.url, command_timeout=TIMEOUT, failures=2, cooldown=0.3)
    await cache.json.set("k", "v", 60)
    killable.kill()
    with caplog.at_level(logging.INFO, logger="bastion.cache"):
        for _ in range(5):
            assert await cache.json.get("k") is None
        assert cache.breaker_state is BreakerState.OPEN
        # Still down after the cool-off: the probe fails and the breaker re-opens.
        await asyncio.sleep(0.35)
        assert await cache.json.get("k") is None
        assert cache.breaker_state is BreakerState.OPEN
        killable.start()
        await asyncio.sleep(0.35)
        assert await cache.json.set("k", "back", 60)
        assert cache.breaker_state is BreakerState.CLOSED
        assert await cache.json.get("k") == "back"
    transitions = [r.getMessage() for r in caplog.records if "breaker" in r.getMessage()]
    assert transitions == [
        "cache breaker valkey: closed -> open",
        "cache breaker valkey: open -> half_open",
        "cache breaker valkey: half_open -> open",
        "cache breaker valkey: open -> half_open",
        "cache breaker valkey: half_open -> closed",
    ]
    await cache.aclose()
