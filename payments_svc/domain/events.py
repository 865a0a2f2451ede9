"""Events: one per state change, written to the outbox with the change. Pure."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from payments_svc.domain.payments import Status

# The event type each payment intent status change emits.
INTENT_EVENT_TYPES: dict[Status, str] = {
    Status.CREATED: "payment_intent.created",
    Status.PROCESSING: "payment_intent.processing",
    Status.AUTHORIZED: "payment_intent.authorized",
    Status.CAPTURED: "payment_intent.captured",
    Status.DECLINED: "payment_intent.declined",
    Status.CANCELED: "payment_intent.canceled",
    Status.SETTLED: "payment_intent.settled",
    Status.REFUNDED: "payment_intent.refunded",
    Status.DISPUTED: "payment_intent.disputed",
}


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """One recorded state change; `data` is {"object": <the resource as its API returns it>}."""

    id: str
    type: str
    merchant_id: str
    object_id: str
    data: dict[str, Any]
    created_at: datetime.datetime
    trace_id: str
