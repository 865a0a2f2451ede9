"""Refunds under maker-checker (DESIGN.md §3). Pure: no protobuf, no SQLAlchemy, no I/O.

`pending_approval → succeeded | failed`, `pending_approval → rejected`. A checker first claims
the refund (`approving`, shown as pending approval) so exactly one approval calls the provider.
The requester can never approve their own refund: identities are the principals of the API keys.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Mapping

from payments_svc.domain.errors import Forbidden, IllegalTransition, InvalidRequest
from payments_svc.domain.payments import PaymentIntent, Status

REJECTION_REASON_LENGTH_MAX = 500
# Intents whose captured money may be refunded.
REFUNDABLE = frozenset({Status.CAPTURED, Status.SETTLED})


class RefundStatus(enum.StrEnum):
    """Lifecycle (the proto's Refund.Status names, plus the internal APPROVING)."""

    PENDING_APPROVAL = "PENDING_APPROVAL"
    APPROVING = "APPROVING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    REJECTED = "REJECTED"


class RefundReason(enum.StrEnum):
    """Why the merchant refunds."""

    UNSPECIFIED = "REASON_UNSPECIFIED"
    REQUESTED_BY_CUSTOMER = "REQUESTED_BY_CUSTOMER"
    DUPLICATE = "DUPLICATE"
    FRAUDULENT = "FRAUDULENT"


@dataclasses.dataclass(frozen=True, slots=True)
class Refund:
    """A request to return captured money."""

    id: str
    merchant_id: str
    payment_intent_id: str
    amount: int
    currency: str
    status: RefundStatus
    reason: RefundReason
    requested_by: str
    created_at: datetime.datetime
    updated_at: datetime.datetime
    reviewed_by: str = ""
    rejection_reason: str = ""
    failure_code: str = ""
    failure_message: str = ""
    provider_reference: str = ""
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)
    lease_until: datetime.datetime | None = None


def refundable_amount(intent: PaymentIntent, reserved: int) -> int:
    """What may still be requested: captured minus pending and succeeded refunds (`reserved`)."""
    return max(0, intent.amount_captured - reserved)


def check_refundable(intent: PaymentIntent, requested: int | None, reserved: int) -> int:
    """The amount of a new refund, or an error: wrong state, or more than what is left."""
    if intent.status is Status.DISPUTED:
        raise IllegalTransition("a disputed payment cannot be refunded", reason="PAYMENT_DISPUTED")
    if intent.status not in REFUNDABLE:
        raise IllegalTransition(
            f"a payment intent in {intent.status.value} cannot be refunded", reason="PAYMENT_NOT_REFUNDABLE"
        )
    left = refundable_amount(intent, reserved)
    if left <= 0:
        raise IllegalTransition("the payment is already fully refunded", reason="PAYMENT_FULLY_REFUNDED")
    if requested is None:
        return left
    if requested <= 0:
        raise InvalidRequest("amount must be positive", reason="INVALID_AMOUNT", field="amount")
    if requested > left:
        raise InvalidRequest(
            f"amount exceeds the refundable amount {left} (captured minus pending and succeeded refunds)",
            reason="REFUND_EXCEEDS_CAPTURED",
            field="amount",
        )
    return requested


def check_reviewable(refund: Refund) -> None:
    """Only a refund waiting for approval may be approved or rejected."""
    if refund.status is not RefundStatus.PENDING_APPROVAL:
        raise IllegalTransition(
            f"a refund in {refund.status.value} cannot be reviewed", reason="REFUND_NOT_PENDING_APPROVAL"
        )


def check_checker(refund: Refund, principal: str) -> None:
    """Maker-checker: the approver is an authenticated principal other than the requester."""
    if not principal or principal == refund.requested_by:
        raise Forbidden(
            "a refund must be approved by a principal other than the one who requested it",
            reason="REFUND_SELF_APPROVAL_FORBIDDEN",
        )


def validate_rejection_reason(reason: str) -> str:
    """1-500 characters."""
    if not 1 <= len(reason) <= REJECTION_REASON_LENGTH_MAX:
        raise InvalidRequest(
            "reason must be 1-500 characters", reason="INVALID_REJECTION_REASON", field="reason"
        )
    return reason


def intent_after_refund(intent: PaymentIntent, amount: int, now: datetime.datetime) -> PaymentIntent:
    """The intent with `amount` more refunded; REFUNDED once everything captured is refunded."""
    refunded = intent.amount_refunded + amount
    assert refunded <= intent.amount_captured, "refunds never exceed the captured amount"
    status = Status.REFUNDED if refunded == intent.amount_captured else intent.status
    return dataclasses.replace(intent, amount_refunded=refunded, status=status, updated_at=now)
