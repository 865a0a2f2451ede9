"""Disputes: `opened → under_review → won | lost` (DESIGN.md §3). Pure.

Opening withdraws the disputed amount into reserve plus a dispute fee; `won` reinstates the amount
(the fee stays charged); `lost` keeps both withdrawn. A fully refunded payment cannot be disputed.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Mapping

from payments_svc.domain.errors import IllegalTransition, InvalidRequest
from payments_svc.domain.payments import PaymentIntent, Status

EVIDENCE_TEXT_LENGTH_MAX = 20_000
TRACKING_NUMBER_LENGTH_MAX = 100
DISPUTABLE = frozenset({Status.CAPTURED, Status.SETTLED})


class DisputeStatus(enum.StrEnum):
    """Lifecycle (the proto's Dispute.Status names)."""

    OPENED = "OPENED"
    UNDER_REVIEW = "UNDER_REVIEW"
    WON = "WON"
    LOST = "LOST"


class DisputeReason(enum.StrEnum):
    """Why the cardholder disputes."""

    UNSPECIFIED = "REASON_UNSPECIFIED"
    FRAUDULENT = "FRAUDULENT"
    PRODUCT_NOT_RECEIVED = "PRODUCT_NOT_RECEIVED"
    DUPLICATE = "DUPLICATE"
    SUBSCRIPTION_CANCELED = "SUBSCRIPTION_CANCELED"
    UNRECOGNIZED = "UNRECOGNIZED"
    GENERAL = "GENERAL"


OPEN = frozenset({DisputeStatus.OPENED, DisputeStatus.UNDER_REVIEW})


@dataclasses.dataclass(frozen=True, slots=True)
class Dispute:
    """A cardholder's challenge of a payment."""

    id: str
    merchant_id: str
    payment_intent_id: str
    amount: int
    currency: str
    fee: int
    status: DisputeStatus
    reason: DisputeReason
    intent_status_before: Status
    created_at: datetime.datetime
    updated_at: datetime.datetime
    evidence: Mapping[str, str] | None = None
    provider_dispute_id: str = ""
    provider_dispute_key: str | None = None
    resolved_at: datetime.datetime | None = None


def reason_from_provider(text: str) -> DisputeReason:
    """The provider's reason text as a DisputeReason (unknown reasons are GENERAL)."""
    try:
        return DisputeReason(text.upper())
    except ValueError:
        return DisputeReason.GENERAL


def disputed_amount(intent: PaymentIntent, requested: int | None) -> int:
    """The amount of a new dispute, or an error (wrong state, fully refunded, too much)."""
    if intent.status is Status.REFUNDED or (
        intent.amount_captured > 0 and intent.amount_refunded >= intent.amount_captured
    ):
        raise IllegalTransition(
            "a fully refunded payment cannot be disputed", reason="PAYMENT_FULLY_REFUNDED"
        )
    if intent.status not in DISPUTABLE:
        raise IllegalTransition(
            f"a payment intent in {intent.status.value} cannot be disputed", reason="PAYMENT_NOT_DISPUTABLE"
        )
    left = intent.amount_captured - intent.amount_refunded
    if requested is None or requested == 0:
        return left
    if not 0 < requested <= left:
        raise InvalidRequest(
            f"amount must be 1-{left} (captured minus refunded)", reason="INVALID_AMOUNT", field="amount"
        )
    return requested


def validate_evidence(evidence: Mapping[str, str]) -> dict[str, str]:
    """Explanation and customer communication at most 20,000 characters; tracking at most 100."""
    for name in ("explanation", "customer_communication"):
        if len(evidence.get(name, "")) > EVIDENCE_TEXT_LENGTH_MAX:
            raise InvalidRequest(
                f"{name} must be at most 20000 characters",
                reason="INVALID_EVIDENCE",
                field=f"evidence.{name}",
            )
    if len(evidence.get("shipping_tracking_number", "")) > TRACKING_NUMBER_LENGTH_MAX:
        raise InvalidRequest(
            "shipping_tracking_number must be at most 100 characters",
            reason="INVALID_EVIDENCE",
            field="evidence.shipping_tracking_number",
        )
    return {k: v for k, v in evidence.items() if v}


def submit_evidence(dispute: Dispute, evidence: dict[str, str], now: datetime.datetime) -> Dispute:
    """OPENED or UNDER_REVIEW → UNDER_REVIEW with the evidence."""
    if dispute.status not in OPEN:
        raise IllegalTransition(
            f"a dispute in {dispute.status.value} takes no evidence", reason="DISPUTE_CLOSED"
        )
    return dataclasses.replace(dispute, status=DisputeStatus.UNDER_REVIEW, evidence=evidence, updated_at=now)


def resolve(dispute: Dispute, won: bool, now: datetime.datetime) -> Dispute:
    """An open dispute → WON or LOST."""
    if dispute.status not in OPEN:
        raise IllegalTransition(
            f"a dispute in {dispute.status.value} is already closed", reason="DISPUTE_CLOSED"
        )
    status = DisputeStatus.WON if won else DisputeStatus.LOST
    return dataclasses.replace(dispute, status=status, updated_at=now, resolved_at=now)
