"""get_or_set: a cold hot key costs one loader call, however many callers arrive at once."""

from __future__ import annotations

import asyncio

import pytest

from bastion.cache import Cache
from tests.conftest import make_cache


class Loader:
    """Counts calls and yields to the loop, as a real database query would."""

    def __init__(self, value: object = None, delay: float = 0.05) -> None:
        self.calls = 0
        self.value = value if value is not None else {"computed": True}
        self.delay = delay

    async def __call__(self) -> object:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return self.value


async def test_hundred_concurrent_callers_run_the_loader_once(cache: Cache) -> None:
    loader = Loader()
    results = await asyncio.gather(*(cache.json.get_or_set("hot", 60, loader) for _ in range(100)))
    assert loader.calls == 1
    assert all(result == {"computed": True} for result in results)
    assert await cache.json.get("hot") == {"computed": True}
    # Later callers hit the stored value: the loader is not run again.
    assert await cache.json.get_or_set("hot", 60, loader) == {"computed": True}
    assert loader.calls == 1


async def test_instant_loader_still_runs_once(cache: Cache) -> None:
    loader = Loader(delay=0)
    await asyncio.gather(*(cache.json.get_or_set("instant", 60, loader) for _ in range(100)))
    assert loader.calls == 1


async def test_single_flight_holds_with_the_cache_disabled() -> None:
    loader = Loader()
    disabled = make_cache(None)
    results = await asyncio.gather(*(disabled.json.get_or_set("k", 60, loader) for _ in range(100)))
    assert loader.calls == 1
    assert len(results) == 100


async def test_distinct_keys_load_independently(cache: Cache) -> None:
    loader = Loader()
    await asyncio.gather(*(cache.json.get_or_set(f"k{i % 4}", 60, loader) for i in range(40)))
    assert loader.calls == 4


async def test_loader_error_reaches_every_caller_and_is_not_cached(cache: Cache) -> None:
    calls = 0

    async def failing() -> object:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise LookupError("source down")

    results = await asyncio.gather(
        *(cache.json.get_or_set("err", 60, failing) for _ in range(10)), return_exceptions=True
    )
    assert calls == 1
    assert all(isinstance(r, LookupError) for r in results)
    assert await cache.json.get("err") is None
    with pytest.raises(LookupError):
        await cache.json.get_or_set("err", 60, failing)
    assert calls == 2


async def test_a_cancelled_caller_does_not_cancel_the_fill(cache: Cache) -> None:
    loader = Loader(delay=0.1)
    first = asyncio.create_task(cache.json.get_or_set("c", 60, loader))
    second = asyncio.create_task(cache.json.get_or_set("c", 60, loader))
    await asyncio.sleep(0.02)
    first.cancel()
    assert await second == {"computed": True}
    assert first.cancelled()
    assert loader.calls == 1
