"""Payment outcome and circuit-breaker metrics (Prometheus), registered once per process.

Outcomes are counted from the outbox as the relay publishes it: every confirmation outcome is an
event, and the relay claims each event exactly once, so the count is exact across replicas and
needs no hook in the payment hot path. Breaker states are read from the shared board by a job
pass (the board in Redis is the truth for every replica).
"""

from __future__ import annotations

from collections.abc import Iterable

import prometheus_client

from payments_svc.adapters.circuit_board import CircuitBoard
from payments_svc.domain.breaker import State
from payments_svc.domain.events import Event
from payments_svc.domain.payments import PROVIDERS

PAYMENTS = prometheus_client.Counter(
    "clearhouse_payments_total",
    "Confirmation outcomes of payment intents, by provider and decline code.",
    ["provider", "outcome", "decline_code"],
)
BREAKER_STATE = prometheus_client.Gauge(
    "clearhouse_circuit_breaker_state",
    "Circuit breaker per provider: 0 closed, 1 open, 2 half-open.",
    ["provider"],
)
_OUTCOMES = {
    "payment_intent.authorized": "authorized",
    "payment_intent.declined": "declined",
    "payment_intent.processing": "unknown",
}
_STATE_VALUES = {State.CLOSED: 0, State.OPEN: 1, State.HALF_OPEN: 2}


def observe_events(batch: Iterable[Event]) -> None:
    """Count the confirmation outcomes among published events."""
    for event in batch:
        outcome = _OUTCOMES.get(event.type)
        if outcome is None:
            continue
        intent = event.data.get("object", {})
        error = intent.get("last_error") or {}
        decline_code = (error.get("decline_code") or error.get("code") or "") if outcome == "declined" else ""
        provider = intent.get("provider") or error.get("provider") or "none"
        PAYMENTS.labels(provider=provider, outcome=outcome, decline_code=decline_code).inc()


async def export_breaker_states(board: CircuitBoard) -> int:
    """Job pass: copy every provider's breaker state into the gauge."""
    for provider in PROVIDERS:
        _, state = await board.snapshot(provider)
        BREAKER_STATE.labels(provider=provider).set(_STATE_VALUES[state])
    return len(PROVIDERS)
