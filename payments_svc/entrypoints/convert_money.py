"""Protobuf ↔ domain translation of part 2. Generated types stop here.

Refunds, disputes, webhooks, settlement, payouts and reconciliation.
"""

from __future__ import annotations

from typing import Any

from clearhouse.payments.v1 import (
    disputes_pb2,
    payouts_pb2,
    reconciliation_pb2,
    refunds_pb2,
    settlements_pb2,
    webhook_endpoints_pb2,
)
from google.protobuf import json_format
from google.protobuf.message import Message

from payments_svc.domain.disputes import Dispute, DisputeReason, DisputeStatus
from payments_svc.domain.refunds import Refund, RefundReason, RefundStatus
from payments_svc.domain.webhooks import Delivery, DeliveryStatus, Endpoint
from payments_svc.entrypoints.convert import timestamp
from payments_svc.service_layer.payouts import Payout
from payments_svc.service_layer.reconciliation import Reconciliation
from payments_svc.service_layer.settlement import Settlement


def render(message: Message) -> dict[str, Any]:
    """A message in the proto3 JSON mapping (event payloads)."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


# Refunds --------------------------------------------------------------------------------------


def refund(value: Refund) -> refunds_pb2.Refund:
    """Refund → proto (APPROVING shows as PENDING_APPROVAL: the approval is not finished)."""
    status = RefundStatus.PENDING_APPROVAL if value.status is RefundStatus.APPROVING else value.status
    message = refunds_pb2.Refund(
        id=value.id,
        payment_intent=value.payment_intent_id,
        amount=value.amount,
        currency=value.currency,
        status=refunds_pb2.Refund.Status.Value(status.value),  # type: ignore[arg-type]
        reason=refunds_pb2.Refund.Reason.Value(value.reason.value),  # type: ignore[arg-type]
        requested_by=value.requested_by,
        reviewed_by=value.reviewed_by,
        rejection_reason=value.rejection_reason,
        failure_code=value.failure_code,
        failure_message=value.failure_message,
        provider_reference=value.provider_reference,
        created_at=timestamp(value.created_at),
        updated_at=timestamp(value.updated_at),
    )
    message.metadata.update(value.metadata)
    return message


def render_refund(value: Refund) -> dict[str, Any]:
    """Refund as its API returns it."""
    return render(refund(value))


def refund_reason(value: int) -> RefundReason:
    """Proto enum → domain."""
    return RefundReason(refunds_pb2.Refund.Reason.Name(value))  # type: ignore[arg-type]


def refund_status(value: int) -> RefundStatus | None:
    """Proto enum → domain (unset: None)."""
    return None if value == 0 else RefundStatus(refunds_pb2.Refund.Status.Name(value))  # type: ignore[arg-type]


# Disputes -------------------------------------------------------------------------------------


def dispute(value: Dispute) -> disputes_pb2.Dispute:
    """Dispute → proto."""
    message = disputes_pb2.Dispute(
        id=value.id,
        payment_intent=value.payment_intent_id,
        amount=value.amount,
        currency=value.currency,
        fee=value.fee,
        status=disputes_pb2.Dispute.Status.Value(value.status.value),  # type: ignore[arg-type]
        reason=disputes_pb2.Dispute.Reason.Value(value.reason.value),  # type: ignore[arg-type]
        provider_dispute_id=value.provider_dispute_id,
        created_at=timestamp(value.created_at),
        updated_at=timestamp(value.updated_at),
        resolved_at=timestamp(value.resolved_at),
    )
    if value.evidence:
        message.evidence.CopyFrom(disputes_pb2.DisputeEvidence(**dict(value.evidence)))
    return message


def render_dispute(value: Dispute) -> dict[str, Any]:
    """Dispute as its API returns it."""
    return render(dispute(value))


def dispute_reason(value: int) -> DisputeReason:
    """Proto enum → domain."""
    return DisputeReason(disputes_pb2.Dispute.Reason.Name(value))  # type: ignore[arg-type]


def dispute_status(value: int) -> DisputeStatus | None:
    """Proto enum → domain (unset: None)."""
    return None if value == 0 else DisputeStatus(disputes_pb2.Dispute.Status.Name(value))  # type: ignore[arg-type]


def evidence(message: disputes_pb2.DisputeEvidence) -> dict[str, str]:
    """Evidence fields by name."""
    return {
        "explanation": message.explanation,
        "shipping_tracking_number": message.shipping_tracking_number,
        "customer_communication": message.customer_communication,
    }


# Webhooks -------------------------------------------------------------------------------------


def endpoint(value: Endpoint, *, with_secret: bool = False) -> webhook_endpoints_pb2.WebhookEndpoint:
    """Endpoint → proto (the secret only on creation)."""
    return webhook_endpoints_pb2.WebhookEndpoint(
        id=value.id,
        url=value.url,
        enabled_events=list(value.enabled_events),
        secret=value.secret if with_secret else "",
        description=value.description,
        created_at=timestamp(value.created_at),
    )


def delivery(value: Delivery) -> webhook_endpoints_pb2.WebhookDelivery:
    """Delivery → proto."""
    return webhook_endpoints_pb2.WebhookDelivery(
        id=value.id,
        endpoint_id=value.endpoint_id,
        event_id=value.event_id,
        event_type=value.event_type,
        status=webhook_endpoints_pb2.WebhookDelivery.Status.Value(value.status.value),  # type: ignore[arg-type]
        attempts=[
            webhook_endpoints_pb2.WebhookAttempt(
                attempt_number=a.attempt_number,
                attempted_at=timestamp(a.attempted_at),
                http_status=a.http_status,
                latency_ms=a.latency_ms,
                response_snippet=a.response_snippet,
                error=a.error,
            )
            for a in value.attempts
        ],
        next_attempt_at=timestamp(value.next_attempt_at),
        created_at=timestamp(value.created_at),
        delivered_at=timestamp(value.delivered_at),
    )


def render_delivery(value: Delivery) -> dict[str, Any]:
    """Delivery as its API returns it."""
    return render(delivery(value))


def delivery_status(value: int) -> DeliveryStatus | None:
    """Proto enum → domain (unset: None)."""
    if value == 0:
        return None
    return DeliveryStatus(webhook_endpoints_pb2.WebhookDelivery.Status.Name(value))  # type: ignore[arg-type]


# Settlements, payouts, reconciliations ----------------------------------------------------------


def settlement(value: Settlement) -> settlements_pb2.Settlement:
    """Settlement → proto."""
    return settlements_pb2.Settlement(
        id=value.id,
        merchant_id=value.merchant_id,
        provider=value.provider,
        currency=value.currency,
        as_of=value.as_of,
        gross_amount=value.gross_amount,
        fee_amount=value.fee_amount,
        net_amount=value.net_amount,
        payment_count=value.payment_count,
        lines=[
            settlements_pb2.SettlementLine(
                payment_intent=line.payment_intent, amount=line.amount, fee=line.fee, net=line.net
            )
            for line in value.lines
        ],
        created_at=timestamp(value.created_at),
    )


def render_settlement(value: Settlement) -> dict[str, Any]:
    """Settlement as its API returns it."""
    return render(settlement(value))


def payout(value: Payout) -> payouts_pb2.Payout:
    """Payout → proto."""
    return payouts_pb2.Payout(
        id=value.id,
        amount=value.amount,
        currency=value.currency,
        status=payouts_pb2.Payout.Status.Value(value.status),  # type: ignore[arg-type]
        bank_account=value.bank_account,
        failure_code=value.failure_code,
        failure_message=value.failure_message,
        description=value.description,
        created_at=timestamp(value.created_at),
        updated_at=timestamp(value.updated_at),
    )


def render_payout(value: Payout) -> dict[str, Any]:
    """Payout as its API returns it."""
    return render(payout(value))


def payout_status(value: int) -> str:
    """Proto enum → status name ("" when unset)."""
    return "" if value == 0 else payouts_pb2.Payout.Status.Name(value)  # type: ignore[arg-type]


def reconciliation(value: Reconciliation) -> reconciliation_pb2.Reconciliation:
    """Reconciliation → proto."""
    return reconciliation_pb2.Reconciliation(
        id=value.id,
        provider=value.provider,
        date=value.date,
        item_count=value.item_count,
        matched_count=value.matched_count,
        mismatch_count=value.mismatch_count,
        report_total=value.report_total,
        ledger_total=value.ledger_total,
        merchant_id=value.merchant_id,
        items=[
            reconciliation_pb2.ReconciliationItem(
                reference=i.reference,
                provider_reference=i.provider_reference,
                type=i.type,
                result=reconciliation_pb2.ReconciliationItem.Result.Value(i.result.value),  # type: ignore[arg-type]
                ledger_amount=i.ledger_amount,
                report_amount=i.report_amount,
                ledger_currency=i.ledger_currency,
                report_currency=i.report_currency,
                merchant_id=i.merchant_id,
            )
            for i in value.items
        ],
        created_at=timestamp(value.created_at),
    )


def render_reconciliation(value: Reconciliation) -> dict[str, Any]:
    """Reconciliation as its API returns it."""
    return render(reconciliation(value))
