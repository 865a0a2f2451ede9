"""The Cache interface against a real Redis and the in-process fallback."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest

from chassis.cache import Cache, MemoryCache, RedisCache
from tests.support.infra import require_redis


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[Cache]:
    if request.param == "memory":
        backend: Cache = MemoryCache()
    else:
        url = await require_redis()
        backend = RedisCache(url, prefix=f"test:{secrets.token_hex(6)}:")
    yield backend
    await backend.close()


async def test_strings_with_ttl_and_only_if_absent(cache: Cache) -> None:
    assert await cache.get("k") is None
    assert await cache.set("k", "v1")
    assert not await cache.set("k", "v2", only_if_absent=True)
    assert await cache.get("k") == "v1"
    assert await cache.set("short", "x", ttl_seconds=0.05)
    await asyncio.sleep(0.15)  # the TTL itself is what is under test here
    assert await cache.get("short") is None
    await cache.delete("k")
    assert await cache.get("k") is None


async def test_counters_are_atomic(cache: Cache) -> None:
    results = await asyncio.gather(*(cache.incr("n", ttl_seconds=60) for _ in range(50)))
    assert sorted(results) == list(range(1, 51))
    assert await cache.incr("n", 10) == 60


async def test_hashes(cache: Cache) -> None:
    assert await cache.hgetall("h") == {}
    await cache.hset("h", {"state": "OPEN", "failures": "5"})
    await cache.hset("h", {"failures": "6"})
    assert await cache.hgetall("h") == {"state": "OPEN", "failures": "6"}


async def test_sliding_windows_count_only_recent_members(cache: Cache) -> None:
    assert await cache.window_add("w", "a", window_seconds=10, now=1000.0) == 1
    assert await cache.window_add("w", "b", window_seconds=10, now=1005.0) == 2
    assert await cache.window_add("w", "c", window_seconds=10, now=1012.0) == 2  # "a" fell out
    assert await cache.window_count("w", window_seconds=10, now=1012.0) == 2
    assert await cache.window_count("w", window_seconds=10, now=1030.0) == 0
    assert await cache.ping()
