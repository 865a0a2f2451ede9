"""SQL of part 2, on a connection the caller owns.

Refunds, disputes, provider webhook ids, ledger postings, webhooks out, settlements, payouts and
reconciliations: one transaction per state change, its events and its postings.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from payments_svc.adapters.orm import (
    disputes,
    events,
    ledger_postings,
    payment_intents,
    payouts,
    provider_webhook_events,
    reconciliations,
    refunds,
    settlement_lines,
    settlements,
    webhook_deliveries,
    webhook_endpoints,
)
from payments_svc.adapters.repository import _insert, utc
from payments_svc.domain.disputes import Dispute, DisputeReason, DisputeStatus
from payments_svc.domain.ledger import TransferCode, TransferSpec
from payments_svc.domain.payments import Status
from payments_svc.domain.refunds import Refund, RefundReason, RefundStatus
from payments_svc.domain.webhooks import Attempt, Delivery, DeliveryStatus, Endpoint

# Refund states that count against the captured amount.
RESERVING = (RefundStatus.PENDING_APPROVAL.value, RefundStatus.APPROVING.value, RefundStatus.SUCCEEDED.value)


def _utc(value: datetime.datetime) -> datetime.datetime:
    result = utc(value)
    assert result is not None
    return result


def _page(rows: list[Any], limit: int) -> tuple[list[Any], bool]:
    return rows[:limit], len(rows) > limit


async def lock_intent(connection: AsyncConnection, intent_id: str) -> None:
    """Row-lock an intent until the transaction ends (PostgreSQL; SQLite's writer lock suffices)."""
    await connection.execute(
        sa.select(payment_intents.c.id).where(payment_intents.c.id == intent_id).with_for_update()
    )


# Refunds ------------------------------------------------------------------------------------


def _refund(row: sa.Row[Any]) -> Refund:
    return Refund(
        id=row.id,
        merchant_id=row.merchant_id,
        payment_intent_id=row.payment_intent_id,
        amount=row.amount,
        currency=row.currency,
        status=RefundStatus(row.status),
        reason=RefundReason(row.reason),
        requested_by=row.requested_by,
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
        reviewed_by=row.reviewed_by,
        rejection_reason=row.rejection_reason,
        failure_code=row.failure_code,
        failure_message=row.failure_message,
        provider_reference=row.provider_reference,
        metadata=dict(row.metadata or {}),
        lease_until=utc(row.lease_until),
    )


def _refund_values(refund: Refund) -> dict[str, Any]:
    return {
        "merchant_id": refund.merchant_id,
        "payment_intent_id": refund.payment_intent_id,
        "amount": refund.amount,
        "currency": refund.currency,
        "status": refund.status.value,
        "reason": refund.reason.value,
        "requested_by": refund.requested_by,
        "reviewed_by": refund.reviewed_by,
        "rejection_reason": refund.rejection_reason,
        "failure_code": refund.failure_code,
        "failure_message": refund.failure_message,
        "provider_reference": refund.provider_reference,
        "metadata": dict(refund.metadata),
        "lease_until": refund.lease_until,
        "created_at": refund.created_at,
        "updated_at": refund.updated_at,
    }


async def insert_refund(connection: AsyncConnection, refund: Refund) -> None:
    """Store a new refund."""
    await connection.execute(refunds.insert().values(id=refund.id, **_refund_values(refund)))


async def update_refund(connection: AsyncConnection, refund: Refund, *, expected: RefundStatus) -> bool:
    """Compare-and-set on the status; False when another request changed it first."""
    result = await connection.execute(
        refunds.update()
        .where(refunds.c.id == refund.id, refunds.c.status == expected.value)
        .values(**_refund_values(refund))
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def get_refund(
    connection: AsyncConnection, refund_id: str, merchant_id: str | None = None
) -> Refund | None:
    """A refund by id (of `merchant_id` when given)."""
    query = refunds.select().where(refunds.c.id == refund_id)
    if merchant_id is not None:
        query = query.where(refunds.c.merchant_id == merchant_id)
    row = (await connection.execute(query)).first()
    return None if row is None else _refund(row)


async def reserved_refund_total(connection: AsyncConnection, intent_id: str) -> int:
    """Pending, approving and succeeded refunds of an intent: what counts against its capture."""
    query = sa.select(sa.func.coalesce(sa.func.sum(refunds.c.amount), 0)).where(
        refunds.c.payment_intent_id == intent_id, refunds.c.status.in_(RESERVING)
    )
    return int((await connection.execute(query)).scalar_one())


async def list_refunds(
    connection: AsyncConnection,
    merchant_id: str,
    *,
    limit: int,
    starting_after: str,
    intent_id: str,
    status: Sequence[str],
) -> tuple[list[Refund], bool]:
    """One page, newest first."""
    query = refunds.select().where(refunds.c.merchant_id == merchant_id)
    if starting_after:
        query = query.where(refunds.c.id < starting_after)
    if intent_id:
        query = query.where(refunds.c.payment_intent_id == intent_id)
    if status:
        query = query.where(refunds.c.status.in_(status))
    rows = list(await connection.execute(query.order_by(refunds.c.id.desc()).limit(limit + 1)))
    page, more = _page(rows, limit)
    return [_refund(r) for r in page], more


async def stalled_refunds(connection: AsyncConnection, now: datetime.datetime, limit: int) -> list[str]:
    """Approved refunds whose provider call has no live owner (crash or unknown outcome)."""
    query = (
        sa.select(refunds.c.id)
        .where(
            refunds.c.status == RefundStatus.APPROVING.value,
            sa.or_(refunds.c.lease_until.is_(None), refunds.c.lease_until < now),
        )
        .order_by(refunds.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [row.id for row in await connection.execute(query)]


async def refunds_succeeded_between(
    connection: AsyncConnection,
    provider: str,
    start: datetime.datetime,
    end: datetime.datetime,
    merchant_id: str,
) -> list[tuple[Refund, str]]:
    """Succeeded refunds of `provider`'s payments in [start, end), with the intent's provider id."""
    query = (
        sa.select(refunds, payment_intents.c.provider_reference.label("intent_provider_reference"))
        .join(payment_intents, payment_intents.c.id == refunds.c.payment_intent_id)
        .where(
            refunds.c.status == RefundStatus.SUCCEEDED.value,
            payment_intents.c.provider == provider,
            refunds.c.updated_at >= start,
            refunds.c.updated_at < end,
        )
    )
    if merchant_id:
        query = query.where(refunds.c.merchant_id == merchant_id)
    return [(_refund(row), row.intent_provider_reference) for row in await connection.execute(query)]


# Disputes -----------------------------------------------------------------------------------


def _dispute(row: sa.Row[Any]) -> Dispute:
    return Dispute(
        id=row.id,
        merchant_id=row.merchant_id,
        payment_intent_id=row.payment_intent_id,
        amount=row.amount,
        currency=row.currency,
        fee=row.fee,
        status=DisputeStatus(row.status),
        reason=DisputeReason(row.reason),
        intent_status_before=Status(row.intent_status_before),
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
        evidence=dict(row.evidence) if row.evidence else None,
        provider_dispute_id=row.provider_dispute_id,
        provider_dispute_key=row.provider_dispute_key,
        resolved_at=utc(row.resolved_at),
    )


def _dispute_values(dispute: Dispute) -> dict[str, Any]:
    return {
        "merchant_id": dispute.merchant_id,
        "payment_intent_id": dispute.payment_intent_id,
        "amount": dispute.amount,
        "currency": dispute.currency,
        "fee": dispute.fee,
        "status": dispute.status.value,
        "reason": dispute.reason.value,
        "evidence": dict(dispute.evidence) if dispute.evidence else None,
        "provider_dispute_key": dispute.provider_dispute_key,
        "provider_dispute_id": dispute.provider_dispute_id,
        "intent_status_before": dispute.intent_status_before.value,
        "created_at": dispute.created_at,
        "updated_at": dispute.updated_at,
        "resolved_at": dispute.resolved_at,
    }


async def insert_dispute(connection: AsyncConnection, dispute: Dispute) -> None:
    """Store a new dispute."""
    await connection.execute(disputes.insert().values(id=dispute.id, **_dispute_values(dispute)))


async def update_dispute(connection: AsyncConnection, dispute: Dispute, *, expected: DisputeStatus) -> bool:
    """Compare-and-set on the status."""
    result = await connection.execute(
        disputes.update()
        .where(disputes.c.id == dispute.id, disputes.c.status == expected.value)
        .values(**_dispute_values(dispute))
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def get_dispute(
    connection: AsyncConnection, dispute_id: str, merchant_id: str | None = None
) -> Dispute | None:
    """A dispute by id (of `merchant_id` when given)."""
    query = disputes.select().where(disputes.c.id == dispute_id)
    if merchant_id is not None:
        query = query.where(disputes.c.merchant_id == merchant_id)
    row = (await connection.execute(query)).first()
    return None if row is None else _dispute(row)


async def dispute_by_provider_key(connection: AsyncConnection, key: str) -> Dispute | None:
    """The dispute opened by a provider's chargeback."""
    row = (await connection.execute(disputes.select().where(disputes.c.provider_dispute_key == key))).first()
    return None if row is None else _dispute(row)


async def list_disputes(
    connection: AsyncConnection,
    merchant_id: str,
    *,
    limit: int,
    starting_after: str,
    intent_id: str,
    status: str,
) -> tuple[list[Dispute], bool]:
    """One page, newest first."""
    query = disputes.select().where(disputes.c.merchant_id == merchant_id)
    if starting_after:
        query = query.where(disputes.c.id < starting_after)
    if intent_id:
        query = query.where(disputes.c.payment_intent_id == intent_id)
    if status:
        query = query.where(disputes.c.status == status)
    rows = list(await connection.execute(query.order_by(disputes.c.id.desc()).limit(limit + 1)))
    page, more = _page(rows, limit)
    return [_dispute(r) for r in page], more


# Provider webhook events --------------------------------------------------------------------


async def record_provider_event(
    connection: AsyncConnection,
    provider: str,
    event_id: str,
    *,
    type_: str,
    result: str,
    now: datetime.datetime,
) -> bool:
    """Remember an applied provider event; False when it was already applied (a duplicate)."""
    statement = _insert(connection, provider_webhook_events).values(
        provider=provider, event_id=event_id, type=type_, result=result[:200], received_at=now
    )
    outcome = await connection.execute(statement.on_conflict_do_nothing())
    return bool(outcome.rowcount == 1)


async def provider_event_result(connection: AsyncConnection, provider: str, event_id: str) -> str | None:
    """What an already applied event did, if it was applied."""
    row = (
        await connection.execute(
            sa.select(provider_webhook_events.c.result).where(
                provider_webhook_events.c.provider == provider, provider_webhook_events.c.event_id == event_id
            )
        )
    ).first()
    return None if row is None else str(row.result)


# Ledger postings ----------------------------------------------------------------------------


def _transfer_json(spec: TransferSpec) -> dict[str, Any]:
    data = dataclasses.asdict(spec)
    data["code"] = int(spec.code)
    return data


def _transfer(data: dict[str, Any]) -> TransferSpec:
    return TransferSpec(**{**data, "code": TransferCode(data["code"])})


async def insert_posting(
    connection: AsyncConnection,
    posting_id: str,
    *,
    merchant_id: str,
    currency: str,
    transfers: Sequence[TransferSpec],
    now: datetime.datetime,
) -> None:
    """Queue transfers for the ledger with the state change that causes them."""
    await connection.execute(
        ledger_postings.insert().values(
            id=posting_id,
            merchant_id=merchant_id,
            currency=currency,
            transfers=[_transfer_json(t) for t in transfers],
            created_at=now,
            posted_at=None,
        )
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Posting:
    """Queued ledger transfers."""

    id: str
    merchant_id: str
    currency: str
    transfers: list[TransferSpec]


async def unposted(connection: AsyncConnection, limit: int, posting_ids: Sequence[str] = ()) -> list[Posting]:
    """Postings the ledger has not confirmed (only `posting_ids` when given), oldest first."""
    query = ledger_postings.select().where(ledger_postings.c.posted_at.is_(None))
    if posting_ids:
        query = query.where(ledger_postings.c.id.in_(posting_ids))
    rows = await connection.execute(query.order_by(ledger_postings.c.created_at).limit(limit))
    return [Posting(r.id, r.merchant_id, r.currency, [_transfer(t) for t in r.transfers]) for r in rows]


async def mark_posted(connection: AsyncConnection, posting_id: str, now: datetime.datetime) -> None:
    """The ledger confirmed a posting."""
    await connection.execute(
        ledger_postings.update().where(ledger_postings.c.id == posting_id).values(posted_at=now)
    )


# Webhook endpoints and deliveries -----------------------------------------------------------


def _endpoint(row: sa.Row[Any]) -> Endpoint:
    return Endpoint(
        id=row.id,
        merchant_id=row.merchant_id,
        url=row.url,
        enabled_events=tuple(row.enabled_events),
        secret=row.secret,
        description=row.description,
        created_at=_utc(row.created_at),
    )


async def insert_endpoint(connection: AsyncConnection, endpoint: Endpoint) -> None:
    """Store a new endpoint."""
    await connection.execute(
        webhook_endpoints.insert().values(
            id=endpoint.id,
            merchant_id=endpoint.merchant_id,
            url=endpoint.url,
            enabled_events=list(endpoint.enabled_events),
            secret=endpoint.secret,
            description=endpoint.description,
            created_at=endpoint.created_at,
            deleted_at=None,
        )
    )


async def get_endpoint(
    connection: AsyncConnection, endpoint_id: str, merchant_id: str | None = None
) -> Endpoint | None:
    """A live (not deleted) endpoint."""
    query = webhook_endpoints.select().where(
        webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.deleted_at.is_(None)
    )
    if merchant_id is not None:
        query = query.where(webhook_endpoints.c.merchant_id == merchant_id)
    row = (await connection.execute(query)).first()
    return None if row is None else _endpoint(row)


async def list_endpoints(
    connection: AsyncConnection, merchant_id: str, *, limit: int, starting_after: str = ""
) -> tuple[list[Endpoint], bool]:
    """A merchant's live endpoints, newest first."""
    query = webhook_endpoints.select().where(
        webhook_endpoints.c.merchant_id == merchant_id, webhook_endpoints.c.deleted_at.is_(None)
    )
    if starting_after:
        query = query.where(webhook_endpoints.c.id < starting_after)
    rows = list(await connection.execute(query.order_by(webhook_endpoints.c.id.desc()).limit(limit + 1)))
    page, more = _page(rows, limit)
    return [_endpoint(r) for r in page], more


async def endpoints_of(connection: AsyncConnection, merchant_ids: Sequence[str]) -> list[Endpoint]:
    """Live endpoints of these merchants."""
    if not merchant_ids:
        return []
    rows = await connection.execute(
        webhook_endpoints.select().where(
            webhook_endpoints.c.merchant_id.in_(sorted(set(merchant_ids))),
            webhook_endpoints.c.deleted_at.is_(None),
        )
    )
    return [_endpoint(r) for r in rows]


async def delete_endpoint(connection: AsyncConnection, endpoint_id: str, now: datetime.datetime) -> None:
    """Soft-delete an endpoint and stop its pending deliveries."""
    await connection.execute(
        webhook_endpoints.update().where(webhook_endpoints.c.id == endpoint_id).values(deleted_at=now)
    )
    await connection.execute(
        webhook_deliveries.update()
        .where(
            webhook_deliveries.c.endpoint_id == endpoint_id,
            webhook_deliveries.c.status == DeliveryStatus.PENDING.value,
        )
        .values(status=DeliveryStatus.DEAD_LETTERED.value, next_attempt_at=None)
    )


def _attempt_json(attempt: Attempt) -> dict[str, Any]:
    data = dataclasses.asdict(attempt)
    data["attempted_at"] = attempt.attempted_at.isoformat()
    return data


def _attempt(data: dict[str, Any]) -> Attempt:
    return Attempt(**{**data, "attempted_at": _utc(datetime.datetime.fromisoformat(data["attempted_at"]))})


def _delivery(row: sa.Row[Any]) -> Delivery:
    return Delivery(
        id=row.id,
        merchant_id=row.merchant_id,
        endpoint_id=row.endpoint_id,
        event_id=row.event_id,
        event_type=row.event_type,
        status=DeliveryStatus(row.status),
        attempts=tuple(_attempt(a) for a in row.attempts),
        created_at=_utc(row.created_at),
        next_attempt_at=utc(row.next_attempt_at),
        delivered_at=utc(row.delivered_at),
    )


async def insert_deliveries(connection: AsyncConnection, batch: Sequence[Delivery]) -> None:
    """Store new deliveries."""
    if not batch:
        return
    await connection.execute(
        webhook_deliveries.insert(),
        [
            {
                "id": d.id,
                "merchant_id": d.merchant_id,
                "endpoint_id": d.endpoint_id,
                "event_id": d.event_id,
                "event_type": d.event_type,
                "status": d.status.value,
                "attempts": [_attempt_json(a) for a in d.attempts],
                "attempt_count": len(d.attempts),
                "next_attempt_at": d.next_attempt_at,
                "lease_until": None,
                "claim_id": None,
                "created_at": d.created_at,
                "delivered_at": d.delivered_at,
            }
            for d in batch
        ],
    )


async def claim_due_deliveries(
    connection: AsyncConnection,
    now: datetime.datetime,
    lease_until: datetime.datetime,
    claim_id: str,
    limit: int,
) -> list[Delivery]:
    """Take due deliveries for this dispatcher: SKIP LOCKED on PostgreSQL, then a lease.

    Other replicas skip locked rows while this transaction runs and leased rows after it, so a
    delivery has one dispatcher at a time.
    """
    lease = webhook_deliveries.c.lease_until
    query = (
        sa.select(webhook_deliveries.c.id)
        .where(
            webhook_deliveries.c.status == DeliveryStatus.PENDING.value,
            webhook_deliveries.c.next_attempt_at <= now,
            sa.or_(lease.is_(None), lease < now),
        )
        .order_by(webhook_deliveries.c.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    delivery_ids = [row.id for row in await connection.execute(query)]
    if not delivery_ids:
        return []
    await connection.execute(
        webhook_deliveries.update()
        .where(
            webhook_deliveries.c.id.in_(delivery_ids),
            webhook_deliveries.c.status == DeliveryStatus.PENDING.value,
            sa.or_(lease.is_(None), lease < now),
        )
        .values(lease_until=lease_until, claim_id=claim_id)
    )
    rows = await connection.execute(
        webhook_deliveries.select().where(
            webhook_deliveries.c.id.in_(delivery_ids), webhook_deliveries.c.claim_id == claim_id
        )
    )
    return [_delivery(r) for r in rows]


async def store_attempt(connection: AsyncConnection, delivery: Delivery, claim_id: str) -> bool:
    """Record an attempt's outcome if this dispatcher still holds the claim."""
    result = await connection.execute(
        webhook_deliveries.update()
        .where(webhook_deliveries.c.id == delivery.id, webhook_deliveries.c.claim_id == claim_id)
        .values(
            status=delivery.status.value,
            attempts=[_attempt_json(a) for a in delivery.attempts],
            attempt_count=len(delivery.attempts),
            next_attempt_at=delivery.next_attempt_at,
            delivered_at=delivery.delivered_at,
            lease_until=None,
            claim_id=None,
        )
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def list_deliveries(
    connection: AsyncConnection, endpoint_id: str, *, limit: int, starting_after: str, status: str
) -> tuple[list[Delivery], bool]:
    """One page of an endpoint's deliveries, newest first."""
    query = webhook_deliveries.select().where(webhook_deliveries.c.endpoint_id == endpoint_id)
    if starting_after:
        query = query.where(webhook_deliveries.c.id < starting_after)
    if status:
        query = query.where(webhook_deliveries.c.status == status)
    rows = list(await connection.execute(query.order_by(webhook_deliveries.c.id.desc()).limit(limit + 1)))
    page, more = _page(rows, limit)
    return [_delivery(r) for r in page], more


async def oldest_unrelayed_event_time(connection: AsyncConnection) -> datetime.datetime | None:
    """Creation time of the oldest event the relay has not published (outbox lag)."""
    value = (
        await connection.execute(
            sa.select(sa.func.min(events.c.created_at)).where(events.c.relayed_at.is_(None))
        )
    ).scalar_one()
    return utc(value)


# Settlements --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Candidate:
    """A captured, unsettled payment."""

    intent_id: str
    merchant_id: str
    provider: str
    currency: str
    status: Status
    amount_captured: int
    fee_amount: int


async def settlement_candidates(
    connection: AsyncConnection, captured_before: datetime.datetime, merchant_id: str, limit: int
) -> list[Candidate]:
    """Payments captured before `captured_before` and not settled (locked, SKIP LOCKED)."""
    captured = (
        sa.select(events.c.object_id)
        .where(events.c.type == "payment_intent.captured", events.c.created_at < captured_before)
        .scalar_subquery()
    )
    query = (
        sa.select(
            payment_intents.c.id,
            payment_intents.c.merchant_id,
            payment_intents.c.provider,
            payment_intents.c.currency,
            payment_intents.c.status,
            payment_intents.c.amount_captured,
            payment_intents.c.fee_amount,
        )
        .where(
            payment_intents.c.status.in_(
                [Status.CAPTURED.value, Status.REFUNDED.value, Status.DISPUTED.value]
            ),
            payment_intents.c.amount_captured > 0,
            payment_intents.c.operation_kind.is_(None),
            payment_intents.c.id.in_(captured),
            ~sa.exists().where(settlement_lines.c.payment_intent_id == payment_intents.c.id),
        )
        .order_by(payment_intents.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=payment_intents)
    )
    if merchant_id:
        query = query.where(payment_intents.c.merchant_id == merchant_id)
    return [
        Candidate(
            r.id, r.merchant_id, r.provider, r.currency, Status(r.status), r.amount_captured, r.fee_amount
        )
        for r in await connection.execute(query)
    ]


async def is_settled(connection: AsyncConnection, intent_id: str) -> bool:
    """Whether a payment is in a settlement."""
    row = (
        await connection.execute(
            sa.select(settlement_lines.c.payment_intent_id).where(
                settlement_lines.c.payment_intent_id == intent_id
            )
        )
    ).first()
    return row is not None


async def insert_settlement(
    connection: AsyncConnection, values: dict[str, Any], lines: Sequence[dict[str, Any]]
) -> None:
    """Store a settlement with its lines."""
    await connection.execute(settlements.insert().values(**values))
    await connection.execute(
        settlement_lines.insert(), [{**line, "settlement_id": values["id"]} for line in lines]
    )


async def mark_intent_settled(connection: AsyncConnection, intent_id: str, now: datetime.datetime) -> bool:
    """CAPTURED → SETTLED (other statuses keep theirs; the line records the settlement)."""
    result = await connection.execute(
        payment_intents.update()
        .where(payment_intents.c.id == intent_id, payment_intents.c.status == Status.CAPTURED.value)
        .values(status=Status.SETTLED.value, updated_at=now)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def get_settlement(
    connection: AsyncConnection, settlement_id: str, merchant_id: str | None
) -> tuple[sa.Row[Any], list[sa.Row[Any]]] | None:
    """A settlement row and its lines."""
    query = settlements.select().where(settlements.c.id == settlement_id)
    if merchant_id is not None:
        query = query.where(settlements.c.merchant_id == merchant_id)
    row = (await connection.execute(query)).first()
    if row is None:
        return None
    lines = list(
        await connection.execute(
            settlement_lines.select()
            .where(settlement_lines.c.settlement_id == settlement_id)
            .order_by(settlement_lines.c.payment_intent_id)
        )
    )
    return row, lines


async def list_settlements(
    connection: AsyncConnection, merchant_id: str | None, *, limit: int, starting_after: str
) -> tuple[list[sa.Row[Any]], bool]:
    """One page, newest first (all merchants for the platform admin)."""
    query = settlements.select()
    if merchant_id is not None:
        query = query.where(settlements.c.merchant_id == merchant_id)
    if starting_after:
        query = query.where(settlements.c.id < starting_after)
    rows = list(await connection.execute(query.order_by(settlements.c.id.desc()).limit(limit + 1)))
    return _page(rows, limit)


# Payouts ------------------------------------------------------------------------------------


async def insert_payout(connection: AsyncConnection, values: dict[str, Any]) -> None:
    """Store a new payout."""
    await connection.execute(payouts.insert().values(**values))


async def update_payout(
    connection: AsyncConnection, payout_id: str, expected_status: str, values: dict[str, Any]
) -> bool:
    """Compare-and-set on the status."""
    result = await connection.execute(
        payouts.update()
        .where(payouts.c.id == payout_id, payouts.c.status == expected_status)
        .values(**values)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def get_payout(
    connection: AsyncConnection, payout_id: str, merchant_id: str | None = None
) -> sa.Row[Any] | None:
    """A payout row."""
    query = payouts.select().where(payouts.c.id == payout_id)
    if merchant_id is not None:
        query = query.where(payouts.c.merchant_id == merchant_id)
    return (await connection.execute(query)).first()


async def pending_payout_total(connection: AsyncConnection, merchant_id: str, currency: str) -> int:
    """Payouts in flight (their funds are held by a pending ledger transfer)."""
    query = sa.select(sa.func.coalesce(sa.func.sum(payouts.c.amount), 0)).where(
        payouts.c.merchant_id == merchant_id, payouts.c.currency == currency, payouts.c.status == "PENDING"
    )
    return int((await connection.execute(query)).scalar_one())


async def list_payouts(
    connection: AsyncConnection, merchant_id: str, *, limit: int, starting_after: str, status: str
) -> tuple[list[sa.Row[Any]], bool]:
    """One page, newest first."""
    query = payouts.select().where(payouts.c.merchant_id == merchant_id)
    if starting_after:
        query = query.where(payouts.c.id < starting_after)
    if status:
        query = query.where(payouts.c.status == status)
    rows = list(await connection.execute(query.order_by(payouts.c.id.desc()).limit(limit + 1)))
    return _page(rows, limit)


async def stalled_payouts(
    connection: AsyncConnection, older_than: datetime.datetime, limit: int
) -> list[str]:
    """Payouts left PENDING by a crash (the process_payouts job finishes them)."""
    query = (
        sa.select(payouts.c.id)
        .where(payouts.c.status == "PENDING", payouts.c.updated_at < older_than)
        .order_by(payouts.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [row.id for row in await connection.execute(query)]


# Reconciliations ----------------------------------------------------------------------------


async def insert_reconciliation(connection: AsyncConnection, values: dict[str, Any]) -> None:
    """Store a reconciliation report."""
    await connection.execute(reconciliations.insert().values(**values))


async def get_reconciliation(
    connection: AsyncConnection, recon_id: str, merchant_id: str | None
) -> sa.Row[Any] | None:
    """A report (the platform's own runs have merchant_id "")."""
    query = reconciliations.select().where(reconciliations.c.id == recon_id)
    if merchant_id is not None:
        query = query.where(reconciliations.c.merchant_id == merchant_id)
    return (await connection.execute(query)).first()


async def list_reconciliations(
    connection: AsyncConnection, merchant_id: str | None, *, limit: int, starting_after: str
) -> tuple[list[sa.Row[Any]], bool]:
    """One page, newest first."""
    query = reconciliations.select()
    if merchant_id is not None:
        query = query.where(reconciliations.c.merchant_id == merchant_id)
    if starting_after:
        query = query.where(reconciliations.c.id < starting_after)
    rows = list(await connection.execute(query.order_by(reconciliations.c.id.desc()).limit(limit + 1)))
    return _page(rows, limit)


async def captures_between(
    connection: AsyncConnection,
    provider: str,
    start: datetime.datetime,
    end: datetime.datetime,
    merchant_id: str,
) -> list[sa.Row[Any]]:
    """Our captures of `provider` in [start, end) (by the captured event), with their intents."""
    query = (
        sa.select(
            payment_intents.c.id,
            payment_intents.c.merchant_id,
            payment_intents.c.currency,
            payment_intents.c.provider_reference,
        )
        .join(
            events,
            sa.and_(events.c.object_id == payment_intents.c.id, events.c.type == "payment_intent.captured"),
        )
        .where(
            payment_intents.c.provider == provider, events.c.created_at >= start, events.c.created_at < end
        )
    )
    if merchant_id:
        query = query.where(payment_intents.c.merchant_id == merchant_id)
    return list(await connection.execute(query))
