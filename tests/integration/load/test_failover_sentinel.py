"""A sign-in flood on two instances while the Sentinels switch primaries: nothing is lost.

One topology for the module (tests/support/valkey_ha.py: a primary, two
replicas, three Sentinels; a primary is down after ``DOWN_AFTER_MS`` = 400 ms
without an answer). Two app instances on one PostgreSQL, the flood and the
probe of tests/support/failover.py. First the primary is killed (SIGKILL)
mid-flood, then, on fresh instances, a planned ``SENTINEL FAILOVER``.

The bounds are tests/support/failover.py's.
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
from tests.support.servers import AppServer
from tests.support.valkey_ha import ValkeySentinels, cli, wait_replicated

LIMIT = 10


@pytest.fixture(scope="module")
def sentinels() -> Iterator[ValkeySentinels]:
    with ValkeySentinels() as topology:
        yield topology


def _run(
    sentinels: ValkeySentinels, postgres_url: str, planned: bool
) -> tuple[Flood, tuple[AppServer, AppServer]]:
    cli(sentinels.primary(), "FLUSHALL")  # the last test's counts, lockout included
    servers = instances(env(sentinels.url, postgres_url, LIMIT))
    try:
        store(servers[0], "hot", {"n": 1})
        wait_replicated(sentinels.primary())

        def switch() -> None:
            old = sentinels.failover() if planned else sentinels.kill_primary()
            sentinels.wait_for_new_primary(old)

        result = flood(servers, "hot", switch)
    finally:
        for server in servers:
            server.stop()
    return result, servers


def test_a_killed_primary_mid_flood(sentinels: ValkeySentinels, postgres_url: str) -> None:
    result, servers = _run(sentinels, postgres_url, planned=False)
    assert_nothing_broke(result, servers)
    back = result.last_fallback_after(result.promoted_at)
    timeline = [
        (round(p.at - result.promoted_at, 2), p.fallbacks)
        for p in result.probes
        if p.kind == "sign-in"
    ]
    assert back <= BACK_AFTER, f"local decisions {back:.2f}s after the promotion: {timeline}"
    flooder = [r for r in audit(postgres_url, "auth.sign_in.failed") if r["client_ip"] == FLOODER]
    print(f"\nkilled primary: {len(flooder)} password checks for a limit of {LIMIT}; "
          f"promotion {result.promoted_at - result.switched_at:.2f}s after the kill; "
          f"last local decision {back:.2f}s after it")  # fmt: skip
    assert LIMIT <= len(flooder) <= 2 * LIMIT
    assert result.count("429") > 1000
    assert_blocked_rows_add_up(result, postgres_url)


def test_a_planned_switch_mid_flood_loses_nothing(
    sentinels: ValkeySentinels, postgres_url: str
) -> None:
    result, servers = _run(sentinels, postgres_url, planned=True)
    assert_nothing_broke(result, servers)
    back = result.last_fallback_after(result.promoted_at)
    assert back <= BACK_AFTER
    flooder = [r for r in audit(postgres_url, "auth.sign_in.failed") if r["client_ip"] == FLOODER]
    print(f"\nplanned switch: {len(flooder)} password checks for a limit of {LIMIT}; "
          f"switch {result.promoted_at - result.switched_at:.2f}s; {result.local_decisions:.0f} local decisions")  # fmt: skip
    assert len(flooder) == LIMIT
    assert result.count("429") > 1000
    assert_blocked_rows_add_up(result, postgres_url)
