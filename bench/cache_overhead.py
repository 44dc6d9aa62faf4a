"""What bastion's ``cache_get`` costs over a raw valkey-py ``GET``, measured side by side.

Three callers read the same key from the same Valkey, in one process and
event loop (uvloop, as the servers run), one call at a time:

- ``raw``: ``valkey.asyncio.Valkey.from_url(url)`` with valkey-py's defaults,
  the GET the goal is stated against;
- ``raw, no socket timeout``: the same with ``socket_timeout=None``, which
  skips valkey-py's own per-call timers (an ``asyncio.wait_for`` on every
  send and a timeout on every read): the cheapest GET valkey-py can do;
- ``cache_get``: bastion's, with its breaker, its one deadline, the key
  prefix, JSON decoding and the hit/miss hook.

Calls rotate between the three one by one (and which goes first), in rounds,
so that even millisecond hiccups of a shared machine hit all alike and the
ratios stay meaningful when the absolute times wobble. Each ratio is the
median of the per-round ratios.

The wrapper gets a generous deadline (1 s) so that a noisy machine cannot trip
its breaker mid-run, which would turn wrapped reads into instant misses and
flatter it; every wrapped read is checked to have been a hit.

    uv run python -m bench.cache_overhead [--rounds 30] [--ops 1000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import uvloop
import valkey.asyncio as valkey_asyncio
from harness.servers import ValkeyServer

from bastion.cache import Cache, ValkeyOptions, cache_get, set_cache
from bench.results import Context

__all__ = ["Result", "main", "measure", "run", "scenario"]

VALUE = b'{"user":1,"roles":["a","b"]}'


@dataclass(frozen=True)
class Result:
    rounds: int
    ops: int
    #: Seconds per call, one entry per round.
    raw_rounds: tuple[float, ...]
    bare_rounds: tuple[float, ...]
    wrapped_rounds: tuple[float, ...]
    misses: int

    @property
    def raw_per_op(self) -> float:
        return statistics.median(self.raw_rounds)

    @property
    def bare_per_op(self) -> float:
        return statistics.median(self.bare_rounds)

    @property
    def wrapped_per_op(self) -> float:
        return statistics.median(self.wrapped_rounds)

    @property
    def ratio(self) -> float:
        """cache_get against valkey-py's default client: the goal's ratio."""
        return statistics.median(
            w / r for w, r in zip(self.wrapped_rounds, self.raw_rounds, strict=True)
        )

    @property
    def ratio_to_bare(self) -> float:
        """cache_get against the cheapest GET valkey-py can do."""
        return statistics.median(
            w / r for w, r in zip(self.wrapped_rounds, self.bare_rounds, strict=True)
        )


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


async def measure(url: str, rounds: int, ops: int) -> Result:
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
    return Result(
        rounds=rounds,
        ops=ops,
        raw_rounds=tuple(r[0] for r in per_round),
        bare_rounds=tuple(r[1] for r in per_round),
        wrapped_rounds=tuple(r[2] for r in per_round),
        misses=rounds * ops - events["hit"],
    )


def run(url: str, rounds: int, ops: int) -> Result:
    """``measure`` on a fresh uvloop loop (the servers' loop), for callers outside asyncio."""
    return uvloop.run(measure(url, rounds, ops))


def scenario(context: Context) -> dict[str, Any]:
    """Scenario 3 of ``python -m bench``: µs per call of each, the ratios, and misses."""
    result = run(context.valkey_url, context.options.cache_rounds, context.options.cache_ops)
    if result.misses:
        context.problems.append(f"cache: {result.misses} wrapped reads missed")
    return {
        "rounds": result.rounds,
        "ops": result.ops,
        "raw_us": result.raw_per_op * 1e6,
        "bare_us": result.bare_per_op * 1e6,
        "wrapped_us": result.wrapped_per_op * 1e6,
        "ratio": result.ratio,
        "ratio_to_bare": result.ratio_to_bare,
        "misses": result.misses,
    }


def main(argv: list[str] | None = None) -> Result:

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--ops", type=int, default=1000)
    args = parser.parse_args(argv)
    server = ValkeyServer().start()
    try:
        result = run(server.url, args.rounds, args.ops)
    finally:
        server.close()
    print(f"raw valkey-py GET            : {result.raw_per_op * 1e6:8.1f} us/op")
    print(f"raw GET, no socket timeout   : {result.bare_per_op * 1e6:8.1f} us/op")
    print(f"bastion cache_get            : {result.wrapped_per_op * 1e6:8.1f} us/op")
    print(f"ratio cache_get / raw        : {result.ratio:.3f}  (misses: {result.misses})")
    print(f"ratio cache_get / no timeout : {result.ratio_to_bare:.3f}")
    return result


if __name__ == "__main__":
    main()
