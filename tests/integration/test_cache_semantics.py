"""The cache's contract against a real Valkey: round trips, TTL, delete, prefixes, bad data."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
import valkey

from bastion import cache as cache_module
from bastion.cache import Cache
from bastion.config import load_settings
from tests.conftest import make_cache
from tests.support import raw


async def test_round_trip_of_json_values(cache: Cache) -> None:
    values: list[object] = [1, 2.5, "text", True, [1, "a", None], {"nested": {"list": [1, 2]}}]
    for index, value in enumerate(values):
        assert await cache.json.set(f"k{index}", value, 60)
        assert await cache.json.get(f"k{index}") == value


async def test_unicode_survives(cache: Cache) -> None:
    await cache.json.set("u", {"name": "Zoë ✓ 漢字"}, 60)
    assert await cache.json.get("u") == {"name": "Zoë ✓ 漢字"}


async def test_miss_is_none(cache: Cache) -> None:
    assert await cache.json.get("absent") is None
    assert await cache.json.ttl("absent") is None


async def test_ttl_counts_down_and_expires(cache: Cache) -> None:
    await cache.json.set("short", "v", 2)
    written = time.monotonic()
    ttl = await cache.json.ttl("short")
    assert ttl is not None
    assert 1 <= ttl <= 2
    value, left = await cache.json.get_with_ttl("short")
    assert value == "v"
    assert left is not None
    assert left <= 2
    while await cache.json.get("short") is not None:  # gone once its 2 s are up
        assert time.monotonic() - written < 10, "a 2 s key outlived 10 s"
        await asyncio.sleep(0.05)
    assert time.monotonic() - written >= 1.0  # it lived out (most of) its TTL first
    assert await cache.json.get_with_ttl("short") == (None, None)


async def test_ttl_is_none_for_a_key_without_expiry(
    cache: Cache, raw_valkey: valkey.Valkey
) -> None:
    raw_valkey.set("test:forever", "1")
    assert await cache.json.get("forever") == 1
    assert await cache.json.ttl("forever") is None


async def test_delete(cache: Cache) -> None:
    await cache.json.set("gone", {"a": 1}, 60)
    assert await cache.json.delete("gone")
    assert await cache.json.get("gone") is None
    assert await cache.json.delete("never-there")


async def test_keys_live_under_the_prefix(cache: Cache, raw_valkey: valkey.Valkey) -> None:
    await cache.json.set("p", [1], 60)
    assert raw.keys(raw_valkey) == [b"test:p"]
    assert raw_valkey.get("test:p") == b"[1]"


async def test_default_prefix_is_bastion(valkey_url: str, raw_valkey: valkey.Valkey) -> None:
    instance = Cache.from_settings(load_settings(VALKEY_URL=valkey_url))
    try:
        await instance.json.set("k", 1, 60)
        assert raw_valkey.keys("*") == [b"bastion:k"]
    finally:
        await instance.aclose()


async def test_non_json_value_is_a_logged_miss(
    cache: Cache, raw_valkey: valkey.Valkey, caplog: pytest.LogCaptureFixture
) -> None:
    raw_valkey.set("test:broken", b"{not json")
    raw_valkey.set("test:binary", b"\xff\xfe\x00")
    with caplog.at_level(logging.WARNING, logger="bastion.cache"):
        assert await cache.json.get("broken") is None
        assert await cache.json.get_with_ttl("binary") == (None, None)
    assert [r.getMessage() for r in caplog.records] == [
        "cache value for 'broken' is not JSON; treating it as a miss",
        "cache value for 'binary' is not JSON; treating it as a miss",
    ]
    # A decode problem is bad data, not a sick server: the breaker stays closed.
    assert cache.breaker_state is not None
    assert cache.breaker_state.name == "CLOSED"


async def test_unserialisable_value_is_not_stored(
    cache: Cache, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="bastion.cache"):
        assert not await cache.json.set("obj", object(), 60)
        assert not await cache.json.set("nan", float("nan"), 60)
    assert await cache.json.get("obj") is None
    assert len(caplog.records) == 2


async def test_non_positive_ttl_is_a_programming_error(cache: Cache) -> None:
    with pytest.raises(ValueError, match="positive"):
        await cache.json.set("k", 1, 0)


async def test_disabled_cache_does_nothing_and_opens_no_socket() -> None:
    disabled = make_cache(None)
    assert not disabled.enabled
    assert disabled.connection is None
    assert not await disabled.json.set("k", 1, 60)
    assert await disabled.json.get("k") is None
    assert await disabled.json.ttl("k") is None
    assert await disabled.json.get_with_ttl("k") == (None, None)
    assert not await disabled.json.delete("k")
    assert disabled.breaker_state is None


async def test_module_functions_follow_valkey_url(
    monkeypatch: pytest.MonkeyPatch, valkey_url: str, raw_valkey: valkey.Valkey
) -> None:
    cache_module.set_cache(None)
    monkeypatch.setenv("VALKEY_URL", valkey_url)
    try:
        assert cache_module.is_cache_enabled()
        await cache_module.cache_set("m", {"v": 1}, 30)
        assert await cache_module.cache_get("m") == {"v": 1}
        ttl = await cache_module.cache_ttl("m")
        assert ttl is not None
        assert 0 < ttl <= 30
        assert raw_valkey.exists("bastion:m")
        await cache_module.cache_delete("m")
        assert await cache_module.cache_get("m") is None
    finally:
        await cache_module.close_cache()


async def test_module_functions_without_valkey_url() -> None:
    cache_module.set_cache(None)
    try:
        assert not cache_module.is_cache_enabled()
        await cache_module.cache_set("m", 1, 30)
        assert await cache_module.cache_get("m") is None
        assert await cache_module.cache_ttl("m") is None
        await cache_module.cache_delete("m")
    finally:
        await cache_module.close_cache()
