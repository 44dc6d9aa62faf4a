"""Sign-in decisions and cache reads per second: one node, a Sentinel-managed primary, a Cluster.

What ``python -m bench`` reports as scenario 9 (bench/topologies.py), and
what the topology tests run small to check that 16 callers at once through
each client get only shared decisions and hits. One process, 16 callers at a
time; each round measures every topology in turn, so a noisy moment falls
on all of them. A decision is a fresh client IP (one script call); a read, a
hit on a stored key. Ratios are medians of per-round ratios to ``one node``.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from bastion.cache import Cache, ValkeyOptions
from bastion.ratelimit import SignInLimiter


async def _round(url: str, round_: int, ops: int) -> tuple[float, float, int]:
    """Decisions/s, reads/s and how many were local or missed, on a fresh warm client."""
    options = ValkeyOptions(url, 1.0)
    limiter = SignInLimiter("10000/minute", "", valkey=options, key_prefix="bench:{rl}")
    cache, gate = Cache(options, "bench:"), asyncio.Semaphore(16)
    await cache.json.set("hot", {"user": 1}, 600)

    async def decide(i: int) -> bool:
        async with gate:
            ip = f"10.{round_ % 250}.{i // 250 % 250}.{i % 250}"
            return not (await limiter.hit(ip, "")).degraded

    async def read(i: int) -> bool:
        async with gate:
            return await cache.json.get("hot") == {"user": 1}

    rates, wrong = [], 0
    await asyncio.gather(*map(read, range(64)))  # connect; a Cluster's slots, too
    for call in (decide, read):
        started = time.perf_counter()
        wrong += sum(not ok for ok in await asyncio.gather(*map(call, range(ops))))
        rates.append(ops / (time.perf_counter() - started))
    await limiter.aclose()
    await cache.aclose()
    return rates[0], rates[1], wrong


async def measure(urls: dict[str, str], rounds: int, ops: int) -> dict[str, Any]:
    runs: dict[str, list[tuple[float, float, int]]] = {name: [] for name in urls}
    for r in range(rounds):  # interleaved: one node, Sentinel, Cluster, one node, ...
        for name, url in urls.items():
            runs[name].append(await _round(url, r, ops))
    result: dict[str, Any] = {"rounds": rounds, "ops": ops}
    result["wrong"] = sum(run[2] for figures in runs.values() for run in figures)
    for name, figures in runs.items():
        for k, kind in enumerate(("decisions", "reads")):
            ratios = [f[k] / o[k] for f, o in zip(figures, runs["one node"], strict=True)]
            per_s = statistics.median(f[k] for f in figures)
            result.setdefault(name, {})[kind] = {"per_s": per_s, "ratio": statistics.median(ratios)}
    return result
