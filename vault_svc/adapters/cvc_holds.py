"""CVCs held in process memory only, for one authorization, with a time-to-live.

A CVC is never written anywhere (PCI DSS 3.3.1.2): it lives in this dictionary until the one
RevealCard that takes it, its TTL, or the token's deletion, whichever comes first.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# Bound on CVCs held at once (at the default 300 s TTL, ~300 holds per second sustained).
CVC_HOLDS_MAX = 100_000


class CvcHoldsFull(Exception):
    """Too many CVCs are held; the caller should retry shortly."""


class CvcHolds:
    """token → (cvc, expiry on the monotonic clock)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, capacity: int = CVC_HOLDS_MAX) -> None:
        self._clock = clock
        self._capacity = capacity
        self._held: dict[str, tuple[str, float]] = {}

    def __repr__(self) -> str:
        return f"CvcHolds(held={len(self._held)})"

    def hold(self, token: str, cvc: str, ttl_seconds: float) -> None:
        """Hold `cvc` for `token` (replacing any earlier one) for `ttl_seconds`."""
        if token not in self._held and len(self._held) >= self._capacity:
            self._sweep()
            if len(self._held) >= self._capacity:
                raise CvcHoldsFull("too many card verification codes are held")
        self._held[token] = (cvc, self._clock() + ttl_seconds)

    def take(self, token: str) -> str | None:
        """Remove and return the CVC held for `token`, if any and not expired."""
        held = self._held.pop(token, None)
        if held is None or held[1] <= self._clock():
            return None
        return held[0]

    def is_held(self, token: str) -> bool:
        """True when an unexpired CVC is held for `token`."""
        held = self._held.get(token)
        if held is not None and held[1] <= self._clock():
            del self._held[token]
            return False
        return held is not None

    def drop(self, token: str) -> None:
        """Forget any CVC held for `token`."""
        self._held.pop(token, None)

    def _sweep(self) -> None:
        now = self._clock()
        for token in [t for t, (_, expires) in self._held.items() if expires <= now]:
            del self._held[token]
