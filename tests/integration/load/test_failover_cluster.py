"""The same sign-in flood and cache reads on a Cluster: three primaries, one replica each.

One Cluster for the module (tests/support/valkey_ha.py; a node is failed
after ``2 x DOWN_AFTER_MS`` = 800 ms without an answer, and its replica then
takes over). Each limiter's keys share one hash tag, so every decision is one
script on one node; ``MOVED`` after a takeover is followed by the client.
First the flood with no fault: the limit holds exactly and no decision is
local. Then the primary that holds the sign-in counts is killed mid-flood,
under the bounds of tests/support/failover.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.failover import (
    BACK_AFTER,
    FLOODER,
    Flood,
    assert_blocked_rows_add_up,
    assert_nothing_broke,
    audit,
    env,
    flood,
    instances,
    store,
)
from tests.support.load import total
from tests.support.servers import AppServer
from tests.support.valkey_ha import ValkeyCluster, cli, wait_replicated

LIMIT = 10
#: Where the sign-in counts live: every key of the limiter carries this hash tag.
COUNTS = "bastion:{rl}:x"


@pytest.fixture(scope="module")
def cluster() -> Iterator[ValkeyCluster]:
    with ValkeyCluster() as topology:
        yield topology


def _run(
    cluster: ValkeyCluster, postgres_url: str, kill: bool
) -> tuple[Flood, tuple[AppServer, AppServer]]:
    for port in cluster.live_primaries():
        cli(port, "FLUSHALL")  # the last test's counts, lockout included
    servers = instances(env(cluster.url, postgres_url, LIMIT))
    try:
        store(servers[0], "hot", {"n": 1})
        wait_replicated(cluster.primary_of("bastion:hot"))
        holder = cluster.primary_of(COUNTS)

        def switch() -> None:
            if kill:
                cluster.kill(holder)
                cluster.wait_for_failover(holder)

        result = flood(servers, "hot", switch)
    finally:
        for server in servers:
            server.stop()
    return result, servers


def _flooder(postgres_url: str) -> int:
    return sum(r["client_ip"] == FLOODER for r in audit(postgres_url, "auth.sign_in.failed"))


def test_the_limit_holds_exactly_with_no_local_decision(
    cluster: ValkeyCluster, postgres_url: str
) -> None:
    result, servers = _run(cluster, postgres_url, kill=False)
    assert_nothing_broke(result, servers)
    assert _flooder(postgres_url) == LIMIT
    assert sum(total(s, "bastion_rate_limit_fallbacks_total") for s in result.samples) == 0
    assert result.count("429") > 1000
    assert_blocked_rows_add_up(result, postgres_url)


def test_a_killed_primary_fails_over_to_its_replica(
    cluster: ValkeyCluster, postgres_url: str
) -> None:
    result, servers = _run(cluster, postgres_url, kill=True)
    assert_nothing_broke(result, servers)
    back = result.last_fallback_after(result.promoted_at)
    checks = _flooder(postgres_url)
    print(f"\nkilled Cluster primary: {checks} password checks for a limit of {LIMIT}; "
          f"takeover {result.promoted_at - result.switched_at:.2f}s after the kill; "
          f"last local decision {back:.2f}s after it")  # fmt: skip
    assert back <= BACK_AFTER
    assert LIMIT <= checks <= 2 * LIMIT
    assert result.count("429") > 1000
    assert_blocked_rows_add_up(result, postgres_url)
