"""What bastion's cache wrapper costs over a raw valkey-py GET, measured side by side.

Both clients talk to the same Valkey in the same process and event loop. Runs
alternate between the two in short rounds, so that a noisy neighbour slows
both alike and the ratio stays meaningful even when the absolute times wobble.

    uv run python -m bench.cache_overhead [--rounds 20] [--ops 500]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import valkey.asyncio as valkey_asyncio
from tests.support.servers import ValkeyServer

from bastion.cache import Cache, ValkeyOptions


@dataclass(frozen=True)
class Result:
    raw_per_op: float
    wrapped_per_op: float

    @property
    def ratio(self) -> float:
        return self.wrapped_per_op / self.raw_per_op


async def _time(op: Callable[[], Awaitable[object]], count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        await op()
    return (time.perf_counter() - start) / count


async def measure(url: str, rounds: int, ops: int) -> Result:
    raw = valkey_asyncio.Valkey.from_url(url)
    cache = Cache(ValkeyOptions(url=url, command_timeout=1.0, connect_timeout=1.0), "bench:")
    await raw.set("bench:k", b'{"user":1,"roles":["a","b"]}')

    async def raw_get() -> object:
        return await raw.get("bench:k")

    async def wrapped_get() -> object:
        return await cache.json.get("k")

    assert await wrapped_get() == {"user": 1, "roles": ["a", "b"]}
    await _time(raw_get, ops)  # warm both connections and code paths
    await _time(wrapped_get, ops)
    raw_times, wrapped_times = [], []
    for _ in range(rounds):
        raw_times.append(await _time(raw_get, ops))
        wrapped_times.append(await _time(wrapped_get, ops))
    await raw.aclose()
    await cache.aclose()
    return Result(statistics.median(raw_times), statistics.median(wrapped_times))


def main(argv: list[str] | None = None) -> Result:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--ops", type=int, default=500)
    args = parser.parse_args(argv)
    server = ValkeyServer().start()
    try:
        result = asyncio.run(measure(server.url, args.rounds, args.ops))
    finally:
        server.close()
    print(f"raw valkey-py GET : {result.raw_per_op * 1e6:8.1f} us/op")
    print(f"bastion cache_get : {result.wrapped_per_op * 1e6:8.1f} us/op")
    print(f"ratio (wrapped/raw): {result.ratio:.3f}")
    return result


if __name__ == "__main__":
    main()
