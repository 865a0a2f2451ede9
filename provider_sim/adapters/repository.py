"""SQL repository of the provider: domain objects in and out of the provider's own tables.

Every method runs on a connection already inside a transaction (see `SqlUnitOfWork`); row locks
(`FOR UPDATE`) serialise concurrent captures and refunds of one transaction on PostgreSQL, and
SQLite's `BEGIN IMMEDIATE` serialises writers anyway.
"""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chassis import db
from provider_sim.adapters import orm
from provider_sim.domain.model import Dispute, DisputeStatus, Refund, Status, Transaction
from provider_sim.domain.settlement import RowType, SettledMovement
from provider_sim.domain.webhooks import DeliveryStatus

# Most webhook events one worker pass claims.
WEBHOOK_BATCH_MAX = 100
# Most due chargebacks one worker pass opens.
CHARGEBACK_BATCH_MAX = 100
# Most refunds returned with one transaction.
REFUNDS_PER_TRANSACTION_MAX = 1000

_TRANSACTION_FIELDS = (
    "id",
    "provider",
    "reference",
    "merchant_id",
    "amount",
    "currency",
    "amount_captured",
    "amount_refunded",
    "decline_code",
    "message",
    "last4",
    "card_fingerprint",
    "authorization_code",
    "behaviour",
)
_TIME_FIELDS = ("created_at", "updated_at", "captured_at", "chargeback_due_at")


# Statements of the authorize/capture hot path, built once: building a Core statement per call
# (and hashing its structure to find the compiled form) cost more CPU than running it.
_t = orm.transactions
_GET_TRANSACTION = sa.select(_t).where(_t.c.id == sa.bindparam("b_id"))
_GET_TRANSACTION_FOR_UPDATE = _GET_TRANSACTION.with_for_update()
_GET_TRANSACTION_BY_REFERENCE = sa.select(_t).where(
    _t.c.provider == sa.bindparam("b_provider"), _t.c.reference == sa.bindparam("b_reference")
)
_INSERT_TRANSACTION = _t.insert()
_UPDATE_TRANSACTION = _t.update().where(_t.c.id == sa.bindparam("b_id"))
_GET_CAPTURE_RESPONSE = sa.select(orm.captures.c.response).where(
    orm.captures.c.provider == sa.bindparam("b_provider"),
    orm.captures.c.reference == sa.bindparam("b_reference"),
)
_INSERT_CAPTURE = orm.captures.insert()


def utc(value: datetime.datetime | None) -> datetime.datetime | None:
    """SQLite returns naive datetimes; everything is stored in UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=datetime.UTC) if value.tzinfo is None else value.astimezone(datetime.UTC)


def _utc(value: datetime.datetime) -> datetime.datetime:
    result = utc(value)
    assert result is not None
    return result


def transaction_to_dict(transaction: Transaction) -> dict[str, Any]:
    """Column values of a transaction."""
    values: dict[str, Any] = {name: getattr(transaction, name) for name in _TRANSACTION_FIELDS}
    values["status"] = transaction.status.value
    for name in _TIME_FIELDS:
        values[name] = getattr(transaction, name)
    return values


def transaction_from_mapping(row: Any) -> Transaction:
    """A Transaction from a row (or from a stored snapshot)."""
    values = {name: row[name] for name in _TRANSACTION_FIELDS}
    times = {name: utc(row[name]) for name in _TIME_FIELDS}
    return Transaction(
        status=Status(row["status"]),
        **values,
        created_at=_utc(times["created_at"]),  # type: ignore[arg-type]
        updated_at=_utc(times["updated_at"]),  # type: ignore[arg-type]
        captured_at=times["captured_at"],
        chargeback_due_at=times["chargeback_due_at"],
    )


def snapshot(transaction: Transaction) -> str:
    """JSON snapshot of a transaction (the first answer of a capture or refund)."""
    values = transaction_to_dict(transaction)
    for name in _TIME_FIELDS:
        values[name] = values[name].isoformat() if values[name] is not None else None
    return json.dumps(values, separators=(",", ":"))


def from_snapshot(text: str) -> Transaction:
    """The transaction stored by `snapshot`."""
    values = json.loads(text)
    for name in _TIME_FIELDS:
        values[name] = datetime.datetime.fromisoformat(values[name]) if values[name] else None
    return transaction_from_mapping(values)


def _refund_from_row(row: Any) -> Refund:
    return Refund(
        id=row.id,
        provider=row.provider,
        transaction_id=row.transaction_id,
        reference=row.reference,
        amount=row.amount,
        currency=row.currency,
        created_at=_utc(row.created_at),
    )


def _dispute_from_row(row: Any) -> Dispute:
    return Dispute(
        id=row.id,
        provider=row.provider,
        transaction_id=row.transaction_id,
        amount=row.amount,
        currency=row.currency,
        reason=row.reason,
        status=DisputeStatus(row.status),
        created_at=_utc(row.created_at),
        resolved_at=utc(row.resolved_at),
    )


class PendingEvent:
    """A webhook event due for delivery."""

    __slots__ = ("attempts", "body", "copies", "copies_delivered", "id", "provider", "type")

    def __init__(self, row: Any) -> None:
        self.id: str = row.id
        self.provider: str = row.provider
        self.type: str = row.type
        self.body: bytes = row.body.encode()
        self.copies: int = row.copies
        self.copies_delivered: int = row.copies_delivered
        self.attempts: int = row.attempts


class SqlRepository:
    """The provider's storage, on one connection inside one transaction."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    # Transactions -------------------------------------------------------------------------

    async def get_transaction(self, transaction_id: str, *, for_update: bool = False) -> Transaction | None:
        query = _GET_TRANSACTION_FOR_UPDATE if for_update else _GET_TRANSACTION
        row = (await self.connection.execute(query, {"b_id": transaction_id})).mappings().first()
        return transaction_from_mapping(row) if row else None

    async def get_transaction_by_reference(self, provider: str, reference: str) -> Transaction | None:
        row = (
            (
                await self.connection.execute(
                    _GET_TRANSACTION_BY_REFERENCE, {"b_provider": provider, "b_reference": reference}
                )
            )
            .mappings()
            .first()
        )
        return transaction_from_mapping(row) if row else None

    async def add_transaction(self, transaction: Transaction) -> None:
        await self.connection.execute(_INSERT_TRANSACTION, transaction_to_dict(transaction))

    async def update_transaction(self, transaction: Transaction) -> None:
        values = transaction_to_dict(transaction)
        values["b_id"] = values.pop("id")
        await self.connection.execute(_UPDATE_TRANSACTION, values)

    async def due_chargebacks(self, now: datetime.datetime) -> list[Transaction]:
        query = (
            sa.select(orm.transactions)
            .where(
                orm.transactions.c.chargeback_due_at.is_not(None), orm.transactions.c.chargeback_due_at <= now
            )
            .order_by(orm.transactions.c.chargeback_due_at)
            .limit(CHARGEBACK_BATCH_MAX)
        )
        rows = (await self.connection.execute(query)).mappings().all()
        return [transaction_from_mapping(row) for row in rows]

    # Captures and refunds -----------------------------------------------------------------

    async def get_capture_response(self, provider: str, reference: str) -> Transaction | None:
        response = (
            await self.connection.execute(
                _GET_CAPTURE_RESPONSE, {"b_provider": provider, "b_reference": reference}
            )
        ).scalar_one_or_none()
        return from_snapshot(response) if response else None

    async def add_capture(
        self, provider: str, reference: str, transaction: Transaction, amount: int, now: datetime.datetime
    ) -> None:
        await self.connection.execute(
            _INSERT_CAPTURE,
            {
                "provider": provider,
                "reference": reference,
                "transaction_id": transaction.id,
                "amount": amount,
                "currency": transaction.currency,
                "created_at": now,
                "response": snapshot(transaction),
            },
        )

    async def get_refund_by_reference(
        self, provider: str, reference: str
    ) -> tuple[Refund, Transaction] | None:
        query = sa.select(orm.refunds).where(
            orm.refunds.c.provider == provider, orm.refunds.c.reference == reference
        )
        row = (await self.connection.execute(query)).first()
        return (_refund_from_row(row), from_snapshot(row.response)) if row else None

    async def add_refund(self, refund: Refund, transaction: Transaction) -> None:
        await self.connection.execute(
            orm.refunds.insert().values(
                id=refund.id,
                provider=refund.provider,
                reference=refund.reference,
                transaction_id=refund.transaction_id,
                amount=refund.amount,
                currency=refund.currency,
                created_at=refund.created_at,
                response=snapshot(transaction),
            )
        )

    async def list_refunds(self, transaction_id: str) -> list[Refund]:
        query = (
            sa.select(orm.refunds)
            .where(orm.refunds.c.transaction_id == transaction_id)
            .order_by(orm.refunds.c.created_at, orm.refunds.c.id)
            .limit(REFUNDS_PER_TRANSACTION_MAX)
        )
        return [_refund_from_row(row) for row in (await self.connection.execute(query)).all()]

    async def movements_between(
        self, provider: str, start: datetime.datetime, end: datetime.datetime, settled_at: datetime.datetime
    ) -> list[SettledMovement]:
        """Captures and refunds of [start, end), marked settled (first settlement time kept)."""
        t = orm.transactions
        captured = (
            sa.select(
                t.c.id,
                t.c.reference,
                t.c.merchant_id,
                orm.captures.c.amount,
                orm.captures.c.currency,
                orm.captures.c.created_at,
            )
            .join(t, t.c.id == orm.captures.c.transaction_id)
            .where(
                orm.captures.c.provider == provider,
                orm.captures.c.created_at >= start,
                orm.captures.c.created_at < end,
            )
        )
        refunded = (
            sa.select(
                orm.refunds.c.id,
                orm.refunds.c.reference,
                t.c.merchant_id,
                orm.refunds.c.amount,
                orm.refunds.c.currency,
                orm.refunds.c.created_at,
            )
            .join(t, t.c.id == orm.refunds.c.transaction_id)
            .where(
                orm.refunds.c.provider == provider,
                orm.refunds.c.created_at >= start,
                orm.refunds.c.created_at < end,
            )
        )
        movements = [
            SettledMovement(RowType.CAPTURE, r[0], r[1], r[3], r[4], r[2], _utc(r[5]))
            for r in (await self.connection.execute(captured)).all()
        ]
        movements += [
            SettledMovement(RowType.REFUND, r[0], r[1], r[3], r[4], r[2], _utc(r[5]))
            for r in (await self.connection.execute(refunded)).all()
        ]
        for table in (orm.captures, orm.refunds):
            await self.connection.execute(
                table.update()
                .where(
                    table.c.provider == provider,
                    table.c.created_at >= start,
                    table.c.created_at < end,
                    table.c.settled_at.is_(None),
                )
                .values(settled_at=settled_at)
            )
        return movements

    # Disputes -----------------------------------------------------------------------------

    async def add_dispute(self, dispute: Dispute) -> None:
        await self.connection.execute(
            orm.disputes.insert().values(
                id=dispute.id,
                provider=dispute.provider,
                transaction_id=dispute.transaction_id,
                amount=dispute.amount,
                currency=dispute.currency,
                reason=dispute.reason,
                status=dispute.status.value,
                created_at=dispute.created_at,
                resolved_at=dispute.resolved_at,
            )
        )

    async def get_dispute(self, dispute_id: str, *, for_update: bool = False) -> Dispute | None:
        query = sa.select(orm.disputes).where(orm.disputes.c.id == dispute_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.connection.execute(query)).first()
        return _dispute_from_row(row) if row else None

    async def update_dispute(self, dispute: Dispute) -> None:
        await self.connection.execute(
            orm.disputes.update()
            .where(orm.disputes.c.id == dispute.id)
            .values(status=dispute.status.value, resolved_at=dispute.resolved_at)
        )

    # Webhook events -----------------------------------------------------------------------

    async def add_event(
        self, *, event_id: str, provider: str, type_: str, body: bytes, copies: int, now: datetime.datetime
    ) -> None:
        await self.connection.execute(
            orm.webhook_events.insert().values(
                id=event_id,
                provider=provider,
                type=type_,
                body=body.decode(),
                status=DeliveryStatus.PENDING.value,
                copies=copies,
                copies_delivered=0,
                attempts=0,
                next_attempt_at=now,
                last_error="",
                created_at=now,
            )
        )

    async def due_events(self, now: datetime.datetime) -> list[PendingEvent]:
        e = orm.webhook_events
        query = (
            sa.select(e)
            .where(e.c.status == DeliveryStatus.PENDING.value, e.c.next_attempt_at <= now)
            .order_by(e.c.next_attempt_at, e.c.id)
            .limit(WEBHOOK_BATCH_MAX)
        )
        return [PendingEvent(row) for row in (await self.connection.execute(query)).all()]

    async def record_attempt(
        self,
        event_id: str,
        *,
        status: DeliveryStatus,
        attempts: int,
        copies_delivered: int,
        next_attempt_at: datetime.datetime,
        last_error: str,
        delivered_at: datetime.datetime | None,
    ) -> None:
        await self.connection.execute(
            orm.webhook_events.update()
            .where(orm.webhook_events.c.id == event_id)
            .values(
                status=status.value,
                attempts=attempts,
                copies_delivered=copies_delivered,
                next_attempt_at=next_attempt_at,
                last_error=last_error[:256],
                delivered_at=delivered_at,
            )
        )

    async def event_statuses(self, event_ids: Sequence[str]) -> dict[str, str]:
        query = sa.select(orm.webhook_events.c.id, orm.webhook_events.c.status).where(
            orm.webhook_events.c.id.in_(list(event_ids))
        )
        return {row[0]: row[1] for row in (await self.connection.execute(query)).all()}


class SqlUnitOfWork:
    """Opens one database transaction and hands out the repository bound to it."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # SQLite runs one writer at a time (every transaction here is BEGIN IMMEDIATE). Letting
        # concurrent calls race for its file lock parks each loser in SQLite's busy handler, which
        # sleeps in growing steps (up to 100 ms) in a worker thread; queueing them here instead
        # hands the lock over at once. PostgreSQL keeps its concurrency (row locks).
        self._sqlite_writer = asyncio.Lock() if db.is_sqlite(engine) else None

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[SqlRepository]:
        if self._sqlite_writer is None:
            async with db.transaction(self.engine) as connection:
                yield SqlRepository(connection)
            return
        async with self._sqlite_writer, db.transaction(self.engine) as connection:
            yield SqlRepository(connection)
