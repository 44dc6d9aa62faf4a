"""Scenario 9: sign-in decisions and cache reads per second on Sentinel and Cluster, over one node.

The measurement is :mod:`harness.topologies`, on uvloop as the servers run.
"""

from __future__ import annotations

from typing import Any

import uvloop
from harness.topologies import measure
from harness.valkey_ha import ValkeyCluster, ValkeySentinels

from bench.results import Context


def scenario(context: Context) -> dict[str, Any]:
    rounds, ops = max(1, context.options.cache_rounds // 3), context.options.cache_ops
    with ValkeySentinels() as sentinels, ValkeyCluster() as cluster:
        urls = {"one node": context.valkey_url, "Sentinel": sentinels.url, "Cluster": cluster.url}
        result = uvloop.run(measure(urls, rounds, ops))
    if result["wrong"]:
        context.problems.append(f"topologies: {result['wrong']} local decisions or missed reads")
    return result
