"""Webhook events the providers send to the platform, and their retry schedule."""

from __future__ import annotations

import datetime
import enum
import json
from typing import Any

from provider_sim.domain.model import Dispute, Transaction

# Delivery attempts per event copy before it is given up (dead-lettered).
WEBHOOK_ATTEMPTS_MAX = 8
# Longest wait between two attempts, in units of the base delay (before the delay scale).
BACKOFF_FACTOR_MAX = 64


class EventType(enum.StrEnum):
    """Event types on the wire."""

    CHARGEBACK_OPENED = "chargeback.opened"
    CHARGEBACK_WON = "chargeback.won"
    CHARGEBACK_LOST = "chargeback.lost"


class DeliveryStatus(enum.StrEnum):
    """Where an event's delivery stands."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


def chargeback_body(
    event_id: str, event_type: EventType, transaction: Transaction, dispute: Dispute, now: datetime.datetime
) -> bytes:
    """The JSON body of a chargeback event, exactly as documented for the platform's receiver."""
    payload: dict[str, Any] = {
        "id": event_id,
        "type": event_type.value,
        "created": int(now.timestamp()),
        "provider": transaction.provider,
        "data": {
            "transaction_id": transaction.id,
            "reference": transaction.reference,
            "merchant_id": transaction.merchant_id,
            "dispute_id": dispute.id,
            "amount": dispute.amount,
            "currency": dispute.currency,
            "reason": dispute.reason,
        },
    }
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def backoff_seconds(attempts: int, base_seconds: float) -> float:
    """Wait before the next attempt after `attempts` failed ones: base x 2^(n-1), capped."""
    factor = min(2 ** max(attempts - 1, 0), BACKOFF_FACTOR_MAX)
    return float(base_seconds * factor)
