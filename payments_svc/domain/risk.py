"""Risk rules (DESIGN.md §3). Pure: the caller counts, these rules score.

Documented thresholds (also in docs/payments.md), all windows sliding:

| rule | counts | scores |
| --- | --- | --- |
| `card_velocity` | attempts with this card fingerprint in the last hour (this one too) | >5: 50; >10: 80 |
| `ip_velocity` | confirmations from the IP address in the last hour (this one too) | >20: 40; >50: 80 |
| `amount_above_threshold` | amount vs the merchant's `amount_threshold` | above: 30; above 5 x: 60 |
| `country_mismatch` | card country vs billing country (when both are known) | different: 20 |
| `repeated_declines` | declines of the card fingerprint in the last 24 hours | >= 3: 30; >= 6: 60 |

The score is the sum, capped at 100. Level and decision follow the merchant's thresholds: at or
above `block_score` HIGH / BLOCK, at or above `review_score` MEDIUM / REVIEW, else LOW / ALLOW.
"""

from __future__ import annotations

import dataclasses
import enum

from payments_svc.domain.merchants import RiskSettings

VELOCITY_WINDOW_SECONDS = 3_600
DECLINE_WINDOW_SECONDS = 86_400
CARD_VELOCITY_TIERS = ((10, 80), (5, 50))
IP_VELOCITY_TIERS = ((50, 80), (20, 40))
DECLINE_TIERS = ((6, 60), (3, 30))
AMOUNT_SCORE = 30
AMOUNT_FAR_SCORE = 60
AMOUNT_FAR_MULTIPLE = 5
COUNTRY_MISMATCH_SCORE = 20
SCORE_MAX = 100


class Level(enum.StrEnum):
    """Risk level (the proto's RiskAssessment.Level names)."""

    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"


class Decision(enum.StrEnum):
    """What Confirm does with the score."""

    ALLOW = "ALLOW"
    REVIEW = "REVIEW"
    BLOCK = "BLOCK"


@dataclasses.dataclass(frozen=True, slots=True)
class Signals:
    """What the rules look at for one prospective payment."""

    amount: int
    card_attempts: int = 0
    ip_attempts: int = 0
    card_declines: int = 0
    card_country: str = ""
    billing_country: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Factor:
    """One rule that contributed to a score."""

    code: str
    score: int
    detail: str


@dataclasses.dataclass(frozen=True, slots=True)
class Assessment:
    """A score with its reasons."""

    score: int
    level: Level
    decision: Decision
    factors: tuple[Factor, ...]


def _tier(count: int, tiers: tuple[tuple[int, int], ...], strictly_above: bool) -> int:
    for threshold, points in tiers:
        if (count > threshold) if strictly_above else (count >= threshold):
            return points
    return 0


def assess(signals: Signals, settings: RiskSettings) -> Assessment:
    """Score `signals` against the rules and the merchant's thresholds."""
    factors: list[Factor] = []
    card = _tier(signals.card_attempts, CARD_VELOCITY_TIERS, strictly_above=True)
    if card:
        factors.append(
            Factor("card_velocity", card, f"{signals.card_attempts} attempts with this card in the last hour")
        )
    ip = _tier(signals.ip_attempts, IP_VELOCITY_TIERS, strictly_above=True)
    if ip:
        factors.append(
            Factor("ip_velocity", ip, f"{signals.ip_attempts} attempts from this IP address in the last hour")
        )
    if signals.amount > settings.amount_threshold:
        far = signals.amount > settings.amount_threshold * AMOUNT_FAR_MULTIPLE
        factors.append(
            Factor(
                "amount_above_threshold",
                AMOUNT_FAR_SCORE if far else AMOUNT_SCORE,
                f"amount {signals.amount} above the threshold {settings.amount_threshold}",
            )
        )
    if (
        signals.card_country
        and signals.billing_country
        and signals.card_country.upper() != signals.billing_country.upper()
    ):
        factors.append(
            Factor(
                "country_mismatch",
                COUNTRY_MISMATCH_SCORE,
                f"card country {signals.card_country} differs from billing country {signals.billing_country}",
            )
        )
    declines = _tier(signals.card_declines, DECLINE_TIERS, strictly_above=False)
    if declines:
        factors.append(
            Factor(
                "repeated_declines",
                declines,
                f"{signals.card_declines} declines of this card in the last 24 hours",
            )
        )
    score = min(SCORE_MAX, sum(f.score for f in factors))
    if score >= settings.block_score:
        level, decision = Level.HIGH, Decision.BLOCK
    elif score >= settings.review_score:
        level, decision = Level.MEDIUM, Decision.REVIEW
    else:
        level, decision = Level.LOW, Decision.ALLOW
    return Assessment(score, level, decision, tuple(factors))
