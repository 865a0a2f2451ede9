"""Circuit breaker states (DESIGN.md §3). Pure: the shared store keeps the numbers.

CLOSED → OPEN after `failure_threshold` consecutive failures → HALF_OPEN once
`recovery_timeout_seconds` have passed since opening (at most `half_open_max_calls` trial calls)
→ CLOSED on a success, OPEN again on a failure. A decline is an answer, not a failure: only
errors and timeouts count.
"""

from __future__ import annotations

import dataclasses
import enum


class State(enum.StrEnum):
    """Breaker state (the proto's CircuitBreaker.State names)."""

    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


@dataclasses.dataclass(frozen=True, slots=True)
class BreakerConfig:
    """Thresholds of every provider's breaker."""

    failure_threshold: int = 5
    recovery_timeout_seconds: float = 30.0
    half_open_max_calls: int = 3


@dataclasses.dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """What the shared store holds for one provider."""

    provider: str
    consecutive_failures: int
    # Unix time the breaker opened (None while closed).
    opened_at: float | None
    # Trial calls handed out since it opened.
    trial_calls: int = 0


def state(snapshot: BreakerSnapshot, config: BreakerConfig, now: float) -> State:
    """The state the snapshot means at `now`."""
    if snapshot.opened_at is None:
        return State.CLOSED
    if now - snapshot.opened_at < config.recovery_timeout_seconds:
        return State.OPEN
    return State.HALF_OPEN


def should_open(consecutive_failures: int, config: BreakerConfig) -> bool:
    """Whether this many consecutive failures open a closed breaker."""
    return consecutive_failures >= config.failure_threshold
