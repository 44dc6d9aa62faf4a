"""What bastion's ``cache_get`` costs over a raw valkey-py ``GET``, measured side by side.

Three callers read one key from one Valkey in one uvloop loop, rotating call
by call in rounds: valkey-py with its defaults (the goal's yardstick), with
``socket_timeout=None`` (its cheapest GET), and ``cache_get``, whose 1 s
deadline keeps a noisy machine from tripping its breaker (misses would flatter
it; every wrapped read is checked to be a hit).

    uv run python -m bench.cache_overhead [--rounds 30] [--ops 1000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import uvloop
import valkey.asyncio as valkey_asyncio
from harness.servers import ValkeyServer

from bastion.cache import Cache, ValkeyOptions, cache_get, set_cache
from bench.results import Context

VALUE = b'{"user":1,"roles":["a","b"]}'


Call = Callable[[], Awaitable[object]]


async def _round(calls: Sequence[Call], count: int) -> list[float]:
    """``count`` calls of each, rotating call by call; mean seconds per call of each."""
    clock = time.perf_counter
    totals = [0.0] * len(calls)
    size = len(calls)
    for i in range(count):
        for j in range(size):
            k = (i + j) % size
            start = clock()
            await calls[k]()
            totals[k] += clock() - start
    return [t / count for t in totals]


async def measure(url: str, rounds: int, ops: int) -> dict[str, Any]:
    """µs per call of each (medians of rounds), cache_get's ratio to each (medians of per-round
    ratios), and how many wrapped reads missed."""
    raw = valkey_asyncio.Valkey.from_url(url)
    bare = valkey_asyncio.Valkey.from_url(url, socket_timeout=None)
    events: Counter[str] = Counter()

    def count(event: str) -> None:
        events[event] += 1

    cache = Cache(ValkeyOptions(url=url, command_timeout=1.0), "bench:", on_event=count)
    set_cache(cache)
    await raw.set("bench:k", VALUE)

    async def raw_get() -> object:
        return await raw.get("bench:k")

    async def bare_get() -> object:
        return await bare.get("bench:k")

    async def wrapped_get() -> object:
        return await cache_get("k")

    calls = (raw_get, bare_get, wrapped_get)
    try:
        if await wrapped_get() != {"user": 1, "roles": ["a", "b"]}:
            raise RuntimeError("cache_get did not read back the value the raw client wrote")
        await _round(calls, ops)  # warm every connection and code path
        events.clear()
        per_round = [await _round(calls, ops) for _ in range(rounds)]
    finally:
        set_cache(None)
        await raw.aclose()
        await bare.aclose()
        await cache.aclose()
    raw_s, bare_s, wrapped_s = (tuple(r[i] for r in per_round) for i in range(3))
    return {
        "rounds": rounds,
        "ops": ops,
        "raw_us": statistics.median(raw_s) * 1e6,
        "bare_us": statistics.median(bare_s) * 1e6,
        "wrapped_us": statistics.median(wrapped_s) * 1e6,
        "ratio": statistics.median(w / r for w, r in zip(wrapped_s, raw_s, strict=True)),
        "ratio_to_bare": statistics.median(w / b for w, b in zip(wrapped_s, bare_s, strict=True)),
        "misses": rounds * ops - events["hit"],
    }


def run(url: str, rounds: int, ops: int) -> dict[str, Any]:
    """``measure`` on a fresh uvloop loop (the servers' loop), for callers outside asyncio."""
    return uvloop.run(measure(url, rounds, ops))


def scenario(context: Context) -> dict[str, Any]:
    """Scenario 3 of ``python -m bench``."""
    result = run(context.valkey_url, context.options.cache_rounds, context.options.cache_ops)
    if result["misses"]:
        context.problems.append(f"cache: {result['misses']} wrapped reads missed")
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--ops", type=int, default=1000)
    args = parser.parse_args(argv)
    with ValkeyServer() as server:
        result = run(server.url, args.rounds, args.ops)
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
