"""The cache and the sign-in limit through ``valkey+cluster://``: three primaries, one replica each.

In process, on one Cluster for the module. The keys of one decision share a
hash tag, so each decision stays one script on one node (no ``CROSSSLOT``);
the cache's keys spread over the primaries; ``MOVED`` is followed by the
client; a killed primary's replica takes over and calls meanwhile are
misses within the deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from harness.topologies import measure
from valkey.asyncio.cluster import ValkeyCluster as RawCluster

from bastion.cache import BreakerState
from bastion.config import load_settings
from bastion.ratelimit import SignInLimiter
from tests.conftest import make_cache
from tests.support.valkey_ha import DOWN_AFTER_MS, ValkeyCluster, wait_replicated

DEADLINE = 0.2


@pytest.fixture(scope="module")
def cluster() -> Iterator[ValkeyCluster]:
    with ValkeyCluster() as topology:
        yield topology


async def test_cache_keys_spread_over_the_primaries(cluster: ValkeyCluster) -> None:
    cache = make_cache(cluster.url, command_timeout=DEADLINE)
    for n in range(30):
        assert await cache.json.set(f"k{n}", n, 60)
    assert [await cache.json.get(f"k{n}") for n in range(30)] == list(range(30))
    assert await cache.json.get_with_ttl("k3") == (3, 60)
    assert len({cluster.primary_of(f"test:k{n}") for n in range(30)}) == 3
    loads = 0

    async def load() -> str:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.05)
        return "loaded"

    got = await asyncio.gather(*(cache.json.get_or_set("cold", 60, load) for _ in range(20)))
    assert (got, loads) == (["loaded"] * 20, 1)
    await cache.aclose()


async def test_decisions_are_exact_with_no_local_one(cluster: ValkeyCluster) -> None:
    settings = load_settings(
        VALKEY_URL=cluster.url,
        CACHE_COMMAND_TIMEOUT_MS=200,
        SIGN_IN_RATE_LIMIT="4/minute",
        SIGN_IN_ACCOUNT_RATE_LIMIT="3/minute",
        SIGN_UP_RATE_LIMIT="2/minute",
        PASSWORD_RESET_RATE_LIMIT="2/minute",
    )
    events: list[str] = []
    one = SignInLimiter.from_settings(settings, events.append)
    two = SignInLimiter.from_settings(settings, events.append)
    by_ip = [(await (one, two)[i % 2].hit("192.0.2.9", f"u{i}@x")).allowed for i in range(6)]
    assert by_ip == [True] * 4 + [False] * 2
    # The account limit across addresses: the IP and account windows in one script.
    by_account = [(await one.hit(f"198.51.100.{i}", "victim@x")).allowed for i in range(5)]
    assert by_account == [True] * 3 + [False] * 2
    sign_up = SignInLimiter.for_sign_up(settings, events.append)
    assert [(await sign_up.hit("192.0.2.9", "")).allowed for _ in range(3)] == [True, True, False]
    # The password-reset limiter's IP and email windows: one script, one slot too.
    reset = SignInLimiter.for_password_reset(settings, events.append)
    resets = [(await reset.hit(f"203.0.113.{i}", "ada@x")).allowed for i in range(3)]
    assert resets == [True, True, False]
    assert "fallback" not in events
    peek = await two.peek("192.0.2.9", "victim@x")
    assert (peek["ip"].remaining, peek["account"].remaining) == (0, 0)
    await one.reset("192.0.2.9", "victim@x")
    assert (await one.hit("192.0.2.9", "victim@x")).allowed  # (two remembers its refusal)
    for limiter in (one, two, sign_up, reset):
        await limiter.aclose()


async def test_a_killed_primary_fails_over_to_its_replica(cluster: ValkeyCluster) -> None:
    cache = make_cache(cluster.url, command_timeout=DEADLINE, failures=3, cooldown=0.2)
    assert await cache.json.set("kept", "before", 60)
    dead = cluster.primary_of("test:kept")
    wait_replicated(dead)
    cluster.kill(dead)
    started = time.monotonic()
    slowest = 0.0
    while True:
        begun = time.monotonic()
        value = await cache.json.get("kept")
        slowest = max(slowest, time.monotonic() - begun)
        if value is not None:
            break
        assert time.monotonic() - started < 15, "the replica never took over"
        await asyncio.sleep(0.02)
    assert value == "before"
    assert slowest < DEADLINE + 0.1
    # Node timeout (2 x DOWN_AFTER_MS), the election, and room for a busy machine.
    assert time.monotonic() - started < 2 * DOWN_AFTER_MS / 1000 + 5
    assert cluster.primary_of("test:kept") != dead
    # Every other shard kept answering.
    assert await cache.json.set("after", 1, 60)
    assert cache.breaker_state is BreakerState.CLOSED
    await cache.aclose()


async def test_sixteen_callers_at_once_get_shared_decisions_and_hits(
    cluster: ValkeyCluster, valkey_url: str
) -> None:
    """The benchmark's measurement (scenario 9), small: nothing local, nothing missed."""
    result = await measure({"one node": valkey_url, "Cluster": cluster.url}, 1, 200)
    assert result["wrong"] == 0
    assert result["Cluster"]["decisions"]["per_s"] > 0


async def test_a_client_that_lost_every_seed_finds_the_cluster_again(
    cluster: ValkeyCluster,
) -> None:
    """valkey-py #327: each seed that fails a call is dropped, and with none left it never recovers.

    The state is made by hand (every node unreachable at once for a moment
    is hard to stage on loopback): the seeds gone and the slots forgotten,
    as valkey-py leaves them.
    """
    cache = make_cache(cluster.url, command_timeout=DEADLINE, failures=1000)
    assert await cache.json.set("seeds", 1, 60)
    assert cache.connection is not None
    client = cache.connection._client
    assert isinstance(client, RawCluster)
    client.nodes_manager.startup_nodes.clear()
    await client._reset_for_reinitialize()
    values = [await cache.json.get("seeds") for _ in range(3)]
    assert values[-1] == 1, values  # at most the first call fails; the seeds are put back
    await cache.aclose()
