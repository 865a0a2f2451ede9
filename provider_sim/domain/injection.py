"""Failure injection: seeded, reproducible draws of what happens to each call.

Each injected outcome is one slice of a single uniform draw, so the configured rates are the
observed shares of all calls (they must sum to at most 1) and the same seed with the same call
sequence gives the same outcomes. Every call draws the same number of values whatever its
outcome, so one outcome never shifts the sequence of the next.
"""

from __future__ import annotations

import dataclasses
import enum
import random

from provider_sim.domain.model import InvalidRequest, Profile

# Added latency above this is refused: a simulated acquirer never stalls a caller for minutes.
INJECTED_LATENCY_MS_MAX = 60_000
SEED_ABS_MAX = 2**63 - 1


@dataclasses.dataclass(frozen=True, slots=True)
class FailureConfig:
    """Failure injection of one provider; rates are probabilities in [0, 1]."""

    decline_rate: float = 0.0
    error_rate: float = 0.0
    timeout_rate: float = 0.0
    latency_ms_min: int = 0
    latency_ms_max: int = 0
    duplicate_webhook_rate: float = 0.0
    settlement_mismatch_rate: float = 0.0
    seed: int = 0

    def validate(self) -> FailureConfig:
        """Return self if every value is in range, else raise InvalidRequest naming the field."""
        for name in (
            "decline_rate",
            "error_rate",
            "timeout_rate",
            "duplicate_webhook_rate",
            "settlement_mismatch_rate",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:  # Also refuses NaN.
                raise InvalidRequest(
                    f"{name} must be between 0 and 1", reason="INVALID_RATE", field=f"config.{name}"
                )
        if self.decline_rate + self.error_rate + self.timeout_rate > 1.0 + 1e-9:
            raise InvalidRequest(
                "decline_rate + error_rate + timeout_rate must not exceed 1",
                reason="INVALID_RATE",
                field="config.decline_rate",
            )
        if not 0 <= self.latency_ms_min <= self.latency_ms_max <= INJECTED_LATENCY_MS_MAX:
            raise InvalidRequest(
                f"latency must satisfy 0 <= latency_ms_min <= latency_ms_max <= {INJECTED_LATENCY_MS_MAX}",
                reason="INVALID_LATENCY",
                field="config.latency_ms_max",
            )
        if abs(self.seed) > SEED_ABS_MAX:
            raise InvalidRequest("seed must fit in int64", reason="INVALID_SEED", field="config.seed")
        return self


class Injected(enum.Enum):
    """What failure injection decided for one call."""

    NONE = "none"
    TIMEOUT = "timeout"
    ERROR = "error"
    DECLINE = "decline"


@dataclasses.dataclass(frozen=True, slots=True)
class Draw:
    """Everything random about one call, drawn up front."""

    injected: Injected
    # Uniform [0, 1): compared with the profile's approval rate for ordinary cards.
    approval: float
    # Uniform [0, 1): picks the decline code of a profile decline.
    decline_pick: float
    latency_seconds: float
    authorization_code: str


class Injector:
    """The seeded random sequence of one provider and its failure configuration."""

    def __init__(self, profile: Profile, config: FailureConfig, latency_scale: float) -> None:
        self.profile = profile
        self.config = config
        self.latency_scale = latency_scale
        self._random = random.Random(config.seed)

    def draw(self, *, may_decline: bool = True) -> Draw:
        """Draw the outcome of the next call (a decline is only injected where one makes sense)."""
        config = self.config
        slice_draw = self._random.random()
        approval = self._random.random()
        decline_pick = self._random.random()
        latency_draw = self._random.random()
        code = self._random.randrange(1_000_000)
        if slice_draw < config.timeout_rate:
            injected = Injected.TIMEOUT
        elif slice_draw < config.timeout_rate + config.error_rate:
            injected = Injected.ERROR
        elif may_decline and slice_draw < config.timeout_rate + config.error_rate + config.decline_rate:
            injected = Injected.DECLINE
        else:
            injected = Injected.NONE
        latency_ms = self.profile.latency_ms_min + latency_draw * (
            self.profile.latency_ms_max - self.profile.latency_ms_min
        )
        latency_ms += config.latency_ms_min + latency_draw * (config.latency_ms_max - config.latency_ms_min)
        return Draw(
            injected=injected,
            approval=approval,
            decline_pick=decline_pick,
            latency_seconds=latency_ms / 1000 * self.latency_scale,
            authorization_code=f"{code:06d}",
        )

    def duplicate_webhook(self) -> bool:
        """Whether the next webhook event is sent twice."""
        return self._random.random() < self.config.duplicate_webhook_rate
