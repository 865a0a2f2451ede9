"""What an authorization answers, from the card, the injected draw and the profile."""

from __future__ import annotations

import dataclasses
import datetime
import enum

from provider_sim.domain.injection import Draw, Injected
from provider_sim.domain.model import DECLINE_MESSAGES, Card, CardBehaviour, DeclineCode, Profile, TestCard

# How ordinary cards are declined at the profile's decline rate: (upper bound of the draw, code).
PROFILE_DECLINE_CODES: tuple[tuple[float, DeclineCode], ...] = (
    (0.50, DeclineCode.DO_NOT_HONOR),
    (0.75, DeclineCode.INSUFFICIENT_FUNDS),
    (0.90, DeclineCode.CARD_DECLINED),
    (1.00, DeclineCode.FRAUDULENT),
)


class Outcome(enum.Enum):
    """The shape of the answer."""

    APPROVE = "approve"
    DECLINE = "decline"
    # processing_error: nothing is recorded, the call fails with UNAVAILABLE.
    ERROR = "error"
    # Recorded as approved, then no answer before the caller's deadline.
    TIMEOUT = "timeout"


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one authorization."""

    outcome: Outcome
    decline_code: DeclineCode | None = None

    @property
    def message(self) -> str:
        """Human-readable message of a decline or error."""
        return DECLINE_MESSAGES[self.decline_code] if self.decline_code else ""


def decide(test_card: TestCard, card: Card, draw: Draw, profile: Profile, today: datetime.date) -> Decision:
    """Decide the answer: deterministic test cards first, then injection, then the profile."""
    behaviour = test_card.behaviour
    if behaviour is CardBehaviour.DECLINE:
        assert test_card.decline_code is not None
        return Decision(Outcome.DECLINE, test_card.decline_code)
    if behaviour is CardBehaviour.ERROR:
        return Decision(Outcome.ERROR, DeclineCode.PROCESSING_ERROR)
    if behaviour is CardBehaviour.TIMEOUT:
        return Decision(Outcome.TIMEOUT)
    if card.expired(today):
        return Decision(Outcome.DECLINE, DeclineCode.EXPIRED_CARD)
    if draw.injected is Injected.TIMEOUT:
        return Decision(Outcome.TIMEOUT)
    if draw.injected is Injected.ERROR:
        return Decision(Outcome.ERROR, DeclineCode.PROCESSING_ERROR)
    if draw.injected is Injected.DECLINE:
        return Decision(Outcome.DECLINE, DeclineCode.DO_NOT_HONOR)
    if behaviour is CardBehaviour.PROFILE and draw.approval >= profile.approval_rate:
        code = next(code for bound, code in PROFILE_DECLINE_CODES if draw.decline_pick < bound)
        return Decision(Outcome.DECLINE, code)
    return Decision(Outcome.APPROVE)
