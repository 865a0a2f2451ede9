"""Circuit breakers kept in the shared cache (Redis, or in process), one per provider.

Keys (under the service's cache prefix): `breaker:<provider>:failures` (consecutive failures),
`breaker:<provider>:opened_at` (unix time the breaker opened; absent while closed) and
`breaker:<provider>:trials:<opened_at>` (trial calls handed out while half-open). Every replica
reads and writes the same keys, so they all see the same board. Each step is one atomic cache
operation; two replicas racing at a threshold may both open the breaker, which is harmless.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from chassis.cache import Cache
from payments_svc.domain.breaker import BreakerConfig, BreakerSnapshot, State, should_open, state

# Trial counters outlive the half-open period comfortably, then expire on their own.
TRIALS_TTL_FACTOR = 4


class CircuitBoard:
    """The breakers of every provider."""

    def __init__(self, cache: Cache, config: BreakerConfig, clock: Callable[[], float] = time.time) -> None:
        self._cache = cache
        self.config = config
        self._clock = clock

    @staticmethod
    def _key(provider: str, part: str) -> str:
        return f"breaker:{provider}:{part}"

    async def _opened_at(self, provider: str) -> float | None:
        raw = await self._cache.get(self._key(provider, "opened_at"))
        return float(raw) if raw else None

    async def allow(self, provider: str) -> State | None:
        """The breaker's state if a call may go to `provider` now, else None.

        A half-open breaker hands out one of its limited trial slots per allowed call.
        """
        opened_at = await self._opened_at(provider)
        if opened_at is None:
            return State.CLOSED
        snapshot = BreakerSnapshot(provider, 0, opened_at)
        current = state(snapshot, self.config, self._clock())
        if current is State.OPEN:
            return None
        trials = await self._cache.incr(
            self._key(provider, f"trials:{opened_at!r}"),
            ttl_seconds=self.config.recovery_timeout_seconds * TRIALS_TTL_FACTOR + 60,
        )
        return State.HALF_OPEN if trials <= self.config.half_open_max_calls else None

    async def record_success(self, provider: str, seen: State) -> None:
        """An answer (approval or decline): reset the failures; a half-open trial closes it."""
        await self._cache.set(self._key(provider, "failures"), "0")
        if seen is State.HALF_OPEN:
            await self._cache.delete(self._key(provider, "opened_at"))

    async def record_failure(self, provider: str) -> None:
        """An error or timeout: count it; open at the threshold, re-open a half-open breaker."""
        failures = await self._cache.incr(self._key(provider, "failures"))
        opened_at = await self._opened_at(provider)
        now = self._clock()
        if opened_at is None:
            if should_open(failures, self.config):
                await self._cache.set(self._key(provider, "opened_at"), repr(now), only_if_absent=True)
            return
        if state(BreakerSnapshot(provider, failures, opened_at), self.config, now) is State.HALF_OPEN:
            # A failed trial: open again for a full recovery timeout.
            await self._cache.set(self._key(provider, "opened_at"), repr(now))

    async def snapshot(self, provider: str) -> tuple[BreakerSnapshot, State]:
        """What the board shows for `provider`."""
        raw_failures = await self._cache.get(self._key(provider, "failures"))
        opened_at = await self._opened_at(provider)
        trials = 0
        if opened_at is not None:
            raw_trials = await self._cache.get(self._key(provider, f"trials:{opened_at!r}"))
            trials = int(raw_trials) if raw_trials else 0
        snapshot = BreakerSnapshot(provider, int(raw_failures or 0), opened_at, trials)
        return snapshot, state(snapshot, self.config, self._clock())

    async def reset(self, provider: str) -> None:
        """Close the breaker and forget its failures (operators and tests)."""
        await self._cache.delete(self._key(provider, "opened_at"))
        await self._cache.set(self._key(provider, "failures"), "0")
