"""Sliding-window counters of the risk rules, in the shared cache (Redis, or in process)."""

from __future__ import annotations

import dataclasses
import hashlib

from chassis.cache import Cache
from payments_svc.domain.risk import DECLINE_WINDOW_SECONDS, VELOCITY_WINDOW_SECONDS


@dataclasses.dataclass(frozen=True, slots=True)
class Counts:
    """What the windows hold for one card and one IP address."""

    card_attempts: int = 0
    ip_attempts: int = 0
    card_declines: int = 0


def _ip_key(ip_address: str) -> str:
    # Hashed so raw client addresses are not kept as cache keys longer than needed.
    return hashlib.sha256(ip_address.encode()).hexdigest()[:32]


class RiskCounters:
    """Velocity and decline windows keyed by card fingerprint and IP address."""

    def __init__(self, cache: Cache) -> None:
        self._cache = cache

    async def record_attempt(self, *, fingerprint: str, ip_address: str, attempt_id: str) -> Counts:
        """Count this confirmation attempt and return the windows including it."""
        card = ip = declines = 0
        if fingerprint:
            card = await self._cache.window_add(
                f"risk:card:{fingerprint}", attempt_id, window_seconds=VELOCITY_WINDOW_SECONDS
            )
            declines = await self._cache.window_count(
                f"risk:declines:{fingerprint}", window_seconds=DECLINE_WINDOW_SECONDS
            )
        if ip_address:
            ip = await self._cache.window_add(
                f"risk:ip:{_ip_key(ip_address)}", attempt_id, window_seconds=VELOCITY_WINDOW_SECONDS
            )
        return Counts(card, ip, declines)

    async def read(self, *, fingerprint: str, ip_address: str) -> Counts:
        """The windows as they are, counting a prospective attempt (AssessRisk records nothing)."""
        card = ip = declines = 0
        if fingerprint:
            card = 1 + await self._cache.window_count(
                f"risk:card:{fingerprint}", window_seconds=VELOCITY_WINDOW_SECONDS
            )
            declines = await self._cache.window_count(
                f"risk:declines:{fingerprint}", window_seconds=DECLINE_WINDOW_SECONDS
            )
        if ip_address:
            ip = 1 + await self._cache.window_count(
                f"risk:ip:{_ip_key(ip_address)}", window_seconds=VELOCITY_WINDOW_SECONDS
            )
        return Counts(card, ip, declines)

    async def record_decline(self, *, fingerprint: str, attempt_id: str) -> None:
        """Count a decline of this card."""
        if fingerprint:
            await self._cache.window_add(
                f"risk:declines:{fingerprint}", attempt_id, window_seconds=DECLINE_WINDOW_SECONDS
            )
