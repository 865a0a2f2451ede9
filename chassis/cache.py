"""A small shared-state interface backed by Redis, with an in-process fallback.

Redis is the production choice (REDIS_URL): every replica sees the same counters and circuit
breakers. Without REDIS_URL (the embedded default) `MemoryCache` implements the same interface in
one process. Only what the platform needs: strings with TTL, atomic counters, hashes, and sliding
windows (sorted sets) for velocity rules.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import redis.asyncio as redis_asyncio

# Upper bound on entries one sliding window keeps, so a hot key cannot grow without limit.
WINDOW_ENTRIES_MAX = 10_000


class Cache(Protocol):
    """Operations shared by RedisCache and MemoryCache (all atomic per call)."""

    async def get(self, key: str) -> str | None:
        """Value of `key`, or None."""
        ...

    async def set(
        self, key: str, value: str, *, ttl_seconds: float | None = None, only_if_absent: bool = False
    ) -> bool:
        """Set `key`; with only_if_absent, return False (and change nothing) if it exists."""
        ...

    async def delete(self, key: str) -> None:
        """Remove `key`."""
        ...

    async def incr(self, key: str, amount: int = 1, *, ttl_seconds: float | None = None) -> int:
        """Add `amount` and return the new value; the TTL is set when the key is created."""
        ...

    async def hgetall(self, key: str) -> dict[str, str]:
        """All fields of hash `key`."""
        ...

    async def hset(self, key: str, mapping: dict[str, str]) -> None:
        """Set fields of hash `key`."""
        ...

    async def window_add(
        self, key: str, member: str, *, window_seconds: float, now: float | None = None
    ) -> int:
        """Record `member` now in a sliding window and return the count within the window."""
        ...

    async def window_count(self, key: str, *, window_seconds: float, now: float | None = None) -> int:
        """Count of members recorded within the last `window_seconds`."""
        ...

    async def ping(self) -> bool:
        """True when the backend answers."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class RedisCache:
    """Cache on a real Redis server."""

    def __init__(self, url: str, *, prefix: str = "clearhouse:") -> None:
        self._client = redis_asyncio.Redis.from_url(url, decode_responses=True)
        self._prefix = prefix

    def _k(self, key: str) -> str:
        return self._prefix + key

    async def get(self, key: str) -> str | None:
        value = await self._client.get(self._k(key))
        return None if value is None else str(value)

    async def set(
        self, key: str, value: str, *, ttl_seconds: float | None = None, only_if_absent: bool = False
    ) -> bool:
        px = int(ttl_seconds * 1000) if ttl_seconds else None
        result = await self._client.set(self._k(key), value, px=px, nx=only_if_absent)
        return bool(result)

    async def delete(self, key: str) -> None:
        await self._client.delete(self._k(key))

    async def incr(self, key: str, amount: int = 1, *, ttl_seconds: float | None = None) -> int:
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.incrby(self._k(key), amount)
            if ttl_seconds:
                pipe.pexpire(self._k(key), int(ttl_seconds * 1000), nx=True)
            results = await pipe.execute()
        return int(results[0])

    async def hgetall(self, key: str) -> dict[str, str]:
        raw = await self._client.hgetall(self._k(key))
        return {str(k): str(v) for k, v in raw.items()}

    async def hset(self, key: str, mapping: dict[str, str]) -> None:
        await self._client.hset(self._k(key), mapping=mapping)  # type: ignore[arg-type]

    async def window_add(
        self, key: str, member: str, *, window_seconds: float, now: float | None = None
    ) -> int:
        now = time.time() if now is None else now
        full = self._k(key)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(full, "-inf", now - window_seconds)
            pipe.zadd(full, {member: now})
            pipe.zremrangebyrank(full, 0, -WINDOW_ENTRIES_MAX - 1)
            pipe.zcard(full)
            pipe.pexpire(full, int(window_seconds * 1000) + 1000)
            results = await pipe.execute()
        return int(results[3])

    async def window_count(self, key: str, *, window_seconds: float, now: float | None = None) -> int:
        now = time.time() if now is None else now
        return int(await self._client.zcount(self._k(key), now - window_seconds, "+inf"))

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except (redis_asyncio.RedisError, OSError):
            return False

    async def close(self) -> None:
        await self._client.aclose()


class MemoryCache:
    """In-process Cache for the embedded default (one process only)."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[object, float | None]] = {}
        self._lock = asyncio.Lock()

    def _live(self, key: str) -> object | None:
        entry = self._values.get(key)
        if entry is None:
            return None
        value, expires_at = entry
        if expires_at is not None and expires_at <= time.monotonic():
            del self._values[key]
            return None
        return value

    @staticmethod
    def _expiry(ttl_seconds: float | None) -> float | None:
        return time.monotonic() + ttl_seconds if ttl_seconds else None

    async def get(self, key: str) -> str | None:
        value = self._live(key)
        return value if isinstance(value, str) else None

    async def set(
        self, key: str, value: str, *, ttl_seconds: float | None = None, only_if_absent: bool = False
    ) -> bool:
        async with self._lock:
            if only_if_absent and self._live(key) is not None:
                return False
            self._values[key] = (value, self._expiry(ttl_seconds))
            return True

    async def delete(self, key: str) -> None:
        self._values.pop(key, None)

    async def incr(self, key: str, amount: int = 1, *, ttl_seconds: float | None = None) -> int:
        async with self._lock:
            current = self._live(key)
            if current is None:
                self._values[key] = (str(amount), self._expiry(ttl_seconds))
                return amount
            value = int(str(current)) + amount
            self._values[key] = (str(value), self._values[key][1])
            return value

    async def hgetall(self, key: str) -> dict[str, str]:
        value = self._live(key)
        return dict(value) if isinstance(value, dict) else {}

    async def hset(self, key: str, mapping: dict[str, str]) -> None:
        async with self._lock:
            current = self._live(key)
            merged = dict(current) if isinstance(current, dict) else {}
            merged.update(mapping)
            self._values[key] = (merged, None)

    async def window_add(
        self, key: str, member: str, *, window_seconds: float, now: float | None = None
    ) -> int:
        now = time.time() if now is None else now
        async with self._lock:
            current = self._live(key)
            window = dict(current) if isinstance(current, dict) else {}
            window = {m: t for m, t in window.items() if t > now - window_seconds}
            window[member] = now
            if len(window) > WINDOW_ENTRIES_MAX:
                window = dict(sorted(window.items(), key=lambda item: item[1])[-WINDOW_ENTRIES_MAX:])
            self._values[key] = (window, self._expiry(window_seconds + 1))
            return len(window)

    async def window_count(self, key: str, *, window_seconds: float, now: float | None = None) -> int:
        now = time.time() if now is None else now
        current = self._live(key)
        if not isinstance(current, dict):
            return 0
        return sum(1 for t in current.values() if isinstance(t, float) and t > now - window_seconds)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._values.clear()


def create_cache(redis_url: str | None, *, prefix: str = "clearhouse:") -> Cache:
    """RedisCache when a URL is configured, else the in-process MemoryCache."""
    return RedisCache(redis_url, prefix=prefix) if redis_url else MemoryCache()
