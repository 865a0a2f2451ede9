"""SQL access of the payments service: rows ↔ domain objects, on a connection the caller owns.

Every function takes an open `AsyncConnection` inside the caller's transaction, so a handler can
put a state change, its outbox event and its idempotency record in one commit. Updates of payment
intents compare-and-set on the status and the operation claim, so concurrent requests cannot
both win.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from payments_svc.adapters.orm import (
    api_keys,
    events,
    idempotency_keys,
    merchant_currencies,
    merchants,
    payment_intents,
)
from payments_svc.domain.events import Event
from payments_svc.domain.merchants import ApiKey, Merchant, Pricing, RiskSettings, Role
from payments_svc.domain.payments import (
    CaptureMethod,
    Operation,
    OperationKind,
    PaymentError,
    PaymentIntent,
    PaymentMethodDetails,
    Status,
)


def utc(value: datetime.datetime | None) -> datetime.datetime | None:
    """A timestamp read back from the database, as an aware UTC datetime (SQLite drops tzinfo)."""
    if value is None:
        return None
    return value.replace(tzinfo=datetime.UTC) if value.tzinfo is None else value.astimezone(datetime.UTC)


def _utc(value: datetime.datetime) -> datetime.datetime:
    result = utc(value)
    assert result is not None
    return result


def _insert(connection: AsyncConnection, table: sa.Table) -> Any:
    """An INSERT that can say ON CONFLICT DO NOTHING on both backends."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


# Merchants and keys -------------------------------------------------------------------------


def _merchant(row: sa.Row[Any]) -> Merchant:
    return Merchant(
        id=row.id,
        name=row.name,
        country=row.country,
        default_currency=row.default_currency,
        pricing=Pricing(row.fee_basis_points, row.fee_fixed),
        risk_settings=RiskSettings(row.risk_amount_threshold, row.risk_review_score, row.risk_block_score),
        payout_bank_account=row.payout_bank_account,
        created_at=_utc(row.created_at),
    )


def _merchant_values(merchant: Merchant) -> dict[str, Any]:
    return {
        "name": merchant.name,
        "country": merchant.country,
        "default_currency": merchant.default_currency,
        "fee_basis_points": merchant.pricing.fee_basis_points,
        "fee_fixed": merchant.pricing.fee_fixed,
        "risk_amount_threshold": merchant.risk_settings.amount_threshold,
        "risk_review_score": merchant.risk_settings.review_score,
        "risk_block_score": merchant.risk_settings.block_score,
        "payout_bank_account": merchant.payout_bank_account,
    }


async def insert_merchant(connection: AsyncConnection, merchant: Merchant) -> None:
    """Store a new merchant."""
    await connection.execute(
        merchants.insert().values(
            id=merchant.id, created_at=merchant.created_at, **_merchant_values(merchant)
        )
    )


async def update_merchant(connection: AsyncConnection, merchant: Merchant) -> None:
    """Store a merchant's changed settings."""
    await connection.execute(
        merchants.update().where(merchants.c.id == merchant.id).values(**_merchant_values(merchant))
    )


async def get_merchant(connection: AsyncConnection, merchant_id: str) -> Merchant | None:
    """A merchant by id."""
    row = (await connection.execute(merchants.select().where(merchants.c.id == merchant_id))).first()
    return None if row is None else _merchant(row)


def _api_key(row: sa.Row[Any]) -> ApiKey:
    return ApiKey(
        id=row.id,
        merchant_id=row.merchant_id,
        principal=row.principal,
        role=Role(row.role),
        secret_last4=row.secret_last4,
        created_at=_utc(row.created_at),
        revoked_at=utc(row.revoked_at),
    )


async def insert_api_key(connection: AsyncConnection, key: ApiKey, secret_hash: str) -> None:
    """Store a new key by the hash of its secret."""
    await connection.execute(
        api_keys.insert().values(
            id=key.id,
            merchant_id=key.merchant_id,
            secret_hash=secret_hash,
            secret_last4=key.secret_last4,
            principal=key.principal,
            role=key.role.value,
            created_at=key.created_at,
            revoked_at=key.revoked_at,
        )
    )


async def find_api_key(connection: AsyncConnection, secret_hash: str) -> ApiKey | None:
    """The key whose secret hashes to `secret_hash` (revoked or not)."""
    row = (await connection.execute(api_keys.select().where(api_keys.c.secret_hash == secret_hash))).first()
    return None if row is None else _api_key(row)


async def find_api_key_with_merchant(
    connection: AsyncConnection, secret_hash: str
) -> tuple[ApiKey, Merchant] | None:
    """The key whose secret hashes to `secret_hash` and its merchant, in one query.

    Every RPC authenticates, so this is the hottest read.
    """
    key_columns = [c.label(f"k_{c.name}") for c in api_keys.c]
    query = (
        sa.select(*key_columns, *merchants.c)
        .select_from(api_keys.join(merchants, merchants.c.id == api_keys.c.merchant_id))
        .where(api_keys.c.secret_hash == secret_hash)
    )
    row = (await connection.execute(query)).first()
    if row is None:
        return None
    mapping = row._mapping
    key = ApiKey(
        id=mapping["k_id"],
        merchant_id=mapping["k_merchant_id"],
        principal=mapping["k_principal"],
        role=Role(mapping["k_role"]),
        secret_last4=mapping["k_secret_last4"],
        created_at=_utc(mapping["k_created_at"]),
        revoked_at=utc(mapping["k_revoked_at"]),
    )
    return key, _merchant(row)


async def list_api_keys(connection: AsyncConnection, merchant_id: str, limit: int) -> list[ApiKey]:
    """A merchant's keys, newest first."""
    rows = await connection.execute(
        api_keys.select()
        .where(api_keys.c.merchant_id == merchant_id)
        .order_by(api_keys.c.id.desc())
        .limit(limit)
    )
    return [_api_key(row) for row in rows]


async def count_api_keys(connection: AsyncConnection, merchant_id: str) -> int:
    """How many keys a merchant holds (revoked included)."""
    query = sa.select(sa.func.count()).select_from(api_keys).where(api_keys.c.merchant_id == merchant_id)
    return int((await connection.execute(query)).scalar_one())


async def get_api_key(connection: AsyncConnection, merchant_id: str, key_id: str) -> ApiKey | None:
    """One key of a merchant."""
    row = (
        await connection.execute(
            api_keys.select().where(api_keys.c.merchant_id == merchant_id, api_keys.c.id == key_id)
        )
    ).first()
    return None if row is None else _api_key(row)


async def revoke_api_key(
    connection: AsyncConnection, merchant_id: str, key_id: str, now: datetime.datetime
) -> None:
    """Mark a key revoked (once; a second revoke keeps the first time)."""
    await connection.execute(
        api_keys.update()
        .where(
            api_keys.c.merchant_id == merchant_id, api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)
        )
        .values(revoked_at=now)
    )


async def add_merchant_currency(connection: AsyncConnection, merchant_id: str, currency: str) -> None:
    """Remember that a merchant's ledger accounts exist in `currency`."""
    statement = _insert(connection, merchant_currencies).values(merchant_id=merchant_id, currency=currency)
    await connection.execute(statement.on_conflict_do_nothing())


async def merchant_currency_list(connection: AsyncConnection, merchant_id: str) -> list[str]:
    """Currencies in which the merchant has ledger accounts, sorted."""
    rows = await connection.execute(
        sa.select(merchant_currencies.c.currency)
        .where(merchant_currencies.c.merchant_id == merchant_id)
        .order_by(merchant_currencies.c.currency)
    )
    return [row.currency for row in rows]


# Payment intents ----------------------------------------------------------------------------


def _operation_json(operation: Operation | None) -> dict[str, Any] | None:
    if operation is None:
        return None
    data = dataclasses.asdict(operation)
    data["kind"] = operation.kind.value
    data["started_at"] = operation.started_at.isoformat()
    data["lease_until"] = operation.lease_until.isoformat() if operation.lease_until else None
    return data


def _operation(data: dict[str, Any] | None, lease_until: datetime.datetime | None) -> Operation | None:
    if not data:
        return None
    return Operation(
        kind=OperationKind(data["kind"]),
        claim_id=data["claim_id"],
        started_at=_utc(datetime.datetime.fromisoformat(data["started_at"])),
        # The column is the truth (workers set it without rewriting the JSON).
        lease_until=utc(lease_until),
        amount=int(data["amount"]),
        capture=bool(data.get("capture", False)),
        token=data.get("token", ""),
        provider=data.get("provider", ""),
        reference=data.get("reference", ""),
        fee=int(data.get("fee", 0)),
        reason=data.get("reason", ""),
    )


def _intent(row: sa.Row[Any]) -> PaymentIntent:
    return PaymentIntent(
        id=row.id,
        merchant_id=row.merchant_id,
        status=Status(row.status),
        amount=row.amount,
        currency=row.currency,
        capture_method=CaptureMethod(row.capture_method),
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
        amount_capturable=row.amount_capturable,
        amount_captured=row.amount_captured,
        amount_refunded=row.amount_refunded,
        amount_disputed=row.amount_disputed,
        fee_amount=row.fee_amount,
        last_error=PaymentError(**row.last_error) if row.last_error else None,
        provider=row.provider,
        provider_reference=row.provider_reference,
        preferred_provider=row.preferred_provider,
        payment_method=PaymentMethodDetails(**row.payment_method) if row.payment_method else None,
        description=row.description,
        metadata=dict(row.metadata or {}),
        cancellation_reason=row.cancellation_reason,
        risk_score=row.risk_score,
        attempt=row.attempt,
        authorization_expires_at=utc(row.authorization_expires_at),
        operation=_operation(row.operation, row.operation_lease_until),
    )


def _intent_values(intent: PaymentIntent) -> dict[str, Any]:
    operation = intent.operation
    return {
        "merchant_id": intent.merchant_id,
        "status": intent.status.value,
        "amount": intent.amount,
        "currency": intent.currency,
        "capture_method": intent.capture_method.value,
        "amount_capturable": intent.amount_capturable,
        "amount_captured": intent.amount_captured,
        "amount_refunded": intent.amount_refunded,
        "amount_disputed": intent.amount_disputed,
        "fee_amount": intent.fee_amount,
        "last_error": dataclasses.asdict(intent.last_error) if intent.last_error else None,
        "provider": intent.provider,
        "provider_reference": intent.provider_reference,
        "preferred_provider": intent.preferred_provider,
        "payment_method": dataclasses.asdict(intent.payment_method) if intent.payment_method else None,
        "description": intent.description,
        "metadata": dict(intent.metadata),
        "cancellation_reason": intent.cancellation_reason,
        "risk_score": intent.risk_score,
        "attempt": intent.attempt,
        "authorization_expires_at": intent.authorization_expires_at,
        "created_at": intent.created_at,
        "updated_at": intent.updated_at,
        "operation": _operation_json(operation),
        "operation_kind": operation.kind.value if operation else None,
        "operation_lease_until": operation.lease_until if operation else None,
        "operation_claim_id": operation.claim_id if operation else None,
    }


# Hot statements are built once with bound parameters: building a 30-column UPDATE per call
# costs more CPU than executing it.
_INTENT_COLUMNS = [c.name for c in payment_intents.c if c.name != "id"]
_INSERT_INTENT = payment_intents.insert().values(
    {name: sa.bindparam(name) for name in ["id", *_INTENT_COLUMNS]}
)
_UPDATE_INTENT_VALUES: dict[str, Any] = {name: sa.bindparam(f"new_{name}") for name in _INTENT_COLUMNS}
_UPDATE_INTENT_UNCLAIMED = (
    payment_intents.update()
    .where(
        payment_intents.c.id == sa.bindparam("where_id"),
        payment_intents.c.status == sa.bindparam("where_status"),
        payment_intents.c.operation_claim_id.is_(None),
    )
    .values(_UPDATE_INTENT_VALUES)
)
_UPDATE_INTENT_CLAIMED = (
    payment_intents.update()
    .where(
        payment_intents.c.id == sa.bindparam("where_id"),
        payment_intents.c.status == sa.bindparam("where_status"),
        payment_intents.c.operation_claim_id == sa.bindparam("where_claim_id"),
    )
    .values(_UPDATE_INTENT_VALUES)
)


async def insert_intent(connection: AsyncConnection, intent: PaymentIntent) -> None:
    """Store a new payment intent."""
    await connection.execute(_INSERT_INTENT, {"id": intent.id, **_intent_values(intent)})


async def get_intent(
    connection: AsyncConnection, intent_id: str, merchant_id: str | None = None
) -> PaymentIntent | None:
    """An intent by id; with `merchant_id`, only if it belongs to that merchant."""
    query = payment_intents.select().where(payment_intents.c.id == intent_id)
    if merchant_id is not None:
        query = query.where(payment_intents.c.merchant_id == merchant_id)
    row = (await connection.execute(query)).first()
    return None if row is None else _intent(row)


async def update_intent(
    connection: AsyncConnection,
    intent: PaymentIntent,
    *,
    expected_status: Status,
    expected_claim_id: str | None,
) -> bool:
    """Compare-and-set: store `intent` only if the row still has that status and claim.

    Returns False (and changes nothing) when another request got there first.
    """
    parameters: dict[str, Any] = {f"new_{k}": v for k, v in _intent_values(intent).items()}
    parameters["where_id"] = intent.id
    parameters["where_status"] = expected_status.value
    if expected_claim_id is None:
        statement = _UPDATE_INTENT_UNCLAIMED
    else:
        statement = _UPDATE_INTENT_CLAIMED
        parameters["where_claim_id"] = expected_claim_id
    result = await connection.execute(statement, parameters)
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def release_operation_lease(connection: AsyncConnection, intent_id: str, claim_id: str) -> None:
    """Leave the operation for a resolver: its outcome is unknown or its request failed."""
    await connection.execute(
        payment_intents.update()
        .where(payment_intents.c.id == intent_id, payment_intents.c.operation_claim_id == claim_id)
        .values(operation_lease_until=None)
    )


@dataclasses.dataclass(frozen=True, slots=True)
class IntentFilter:
    """Filters of ListPaymentIntents."""

    merchant_id: str
    limit: int
    starting_after: str | None = None
    status: Status | None = None
    created_after: datetime.datetime | None = None
    created_before: datetime.datetime | None = None


async def list_intents(connection: AsyncConnection, where: IntentFilter) -> tuple[list[PaymentIntent], bool]:
    """One page, newest first (ids are time-sortable), and whether more follow."""
    query = payment_intents.select().where(payment_intents.c.merchant_id == where.merchant_id)
    if where.starting_after:
        query = query.where(payment_intents.c.id < where.starting_after)
    if where.status is not None:
        query = query.where(payment_intents.c.status == where.status.value)
    if where.created_after is not None:
        query = query.where(payment_intents.c.created_at >= where.created_after)
    if where.created_before is not None:
        query = query.where(payment_intents.c.created_at < where.created_before)
    rows = list(await connection.execute(query.order_by(payment_intents.c.id.desc()).limit(where.limit + 1)))
    return [_intent(row) for row in rows[: where.limit]], len(rows) > where.limit


async def intents_needing_resolution(
    connection: AsyncConnection, now: datetime.datetime, limit: int
) -> list[str]:
    """Ids of intents whose operation nobody is working on (unknown outcome, lapsed lease).

    On PostgreSQL the rows are locked with SKIP LOCKED so replicas pick different ones; the
    claim itself is the compare-and-set that follows.
    """
    lease = payment_intents.c.operation_lease_until
    query = (
        sa.select(payment_intents.c.id)
        .where(payment_intents.c.operation_kind.is_not(None), sa.or_(lease.is_(None), lease < now))
        .order_by(payment_intents.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [row.id for row in await connection.execute(query)]


async def expired_authorizations(
    connection: AsyncConnection, now: datetime.datetime, limit: int
) -> list[str]:
    """Ids of authorized intents past their authorization window and not being worked on."""
    query = (
        sa.select(payment_intents.c.id)
        .where(
            payment_intents.c.status == Status.AUTHORIZED.value,
            payment_intents.c.authorization_expires_at < now,
            payment_intents.c.operation_kind.is_(None),
        )
        .order_by(payment_intents.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [row.id for row in await connection.execute(query)]


# Events (outbox) ----------------------------------------------------------------------------


def _event(row: sa.Row[Any]) -> Event:
    return Event(
        id=row.id,
        type=row.type,
        merchant_id=row.merchant_id,
        object_id=row.object_id,
        data=row.data,
        created_at=_utc(row.created_at),
        trace_id=row.trace_id,
    )


async def insert_events(connection: AsyncConnection, batch: Sequence[Event]) -> None:
    """Append events to the outbox."""
    if not batch:
        return
    await connection.execute(
        events.insert(),
        [
            {
                "id": e.id,
                "merchant_id": e.merchant_id,
                "type": e.type,
                "object_id": e.object_id,
                "data": e.data,
                "created_at": e.created_at,
                "trace_id": e.trace_id,
                "relayed_at": None,
            }
            for e in batch
        ],
    )


async def get_event(connection: AsyncConnection, event_id: str, merchant_id: str) -> Event | None:
    """One event of a merchant."""
    row = (
        await connection.execute(
            events.select().where(events.c.id == event_id, events.c.merchant_id == merchant_id)
        )
    ).first()
    return None if row is None else _event(row)


async def list_events(
    connection: AsyncConnection,
    merchant_id: str,
    *,
    limit: int,
    starting_after: str | None = None,
    type_: str | None = None,
    object_id: str | None = None,
) -> tuple[list[Event], bool]:
    """One page of a merchant's events, newest first, and whether more follow."""
    query = events.select().where(events.c.merchant_id == merchant_id)
    if starting_after:
        query = query.where(events.c.id < starting_after)
    if type_:
        query = query.where(events.c.type == type_)
    if object_id:
        query = query.where(events.c.object_id == object_id)
    rows = list(await connection.execute(query.order_by(events.c.id.desc()).limit(limit + 1)))
    return [_event(row) for row in rows[:limit]], len(rows) > limit


async def claim_unrelayed_events(connection: AsyncConnection, limit: int) -> list[Event]:
    """The oldest events not yet relayed (locked with SKIP LOCKED on PostgreSQL)."""
    query = (
        events.select()
        .where(events.c.relayed_at.is_(None))
        .order_by(events.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [_event(row) for row in await connection.execute(query)]


async def mark_relayed(connection: AsyncConnection, event_ids: Sequence[str], now: datetime.datetime) -> None:
    """Record that these events were published."""
    if event_ids:
        await connection.execute(events.update().where(events.c.id.in_(event_ids)).values(relayed_at=now))


# Idempotency keys ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """One stored idempotency key."""

    scope: str
    key: str
    method: str
    request_hash: str
    state: str
    locked_until: datetime.datetime | None
    recovery_point: str
    response_kind: str | None
    response: bytes | None
    created_at: datetime.datetime


def _record(row: sa.Row[Any]) -> IdempotencyRecord:
    return IdempotencyRecord(
        scope=row.scope,
        key=row.key,
        method=row.method,
        request_hash=row.request_hash,
        state=row.state,
        locked_until=utc(row.locked_until),
        recovery_point=row.recovery_point,
        response_kind=row.response_kind,
        response=row.response,
        created_at=_utc(row.created_at),
    )


async def insert_idempotency_key(
    connection: AsyncConnection,
    *,
    scope: str,
    key: str,
    method: str,
    request_hash: str,
    locked_until: datetime.datetime,
    now: datetime.datetime,
) -> bool:
    """Create the key in state "started"; False if it already exists."""
    statement = _insert(connection, idempotency_keys).values(
        scope=scope,
        key=key,
        method=method,
        request_hash=request_hash,
        state="started",
        locked_until=locked_until,
        recovery_point="started",
        created_at=now,
    )
    result = await connection.execute(statement.on_conflict_do_nothing())
    return bool(result.rowcount == 1)


async def get_idempotency_key(connection: AsyncConnection, scope: str, key: str) -> IdempotencyRecord | None:
    """The stored key, if any."""
    row = (
        await connection.execute(
            idempotency_keys.select().where(idempotency_keys.c.scope == scope, idempotency_keys.c.key == key)
        )
    ).first()
    return None if row is None else _record(row)


def _key_where(scope: str, key: str) -> Any:
    return sa.and_(idempotency_keys.c.scope == scope, idempotency_keys.c.key == key)


async def take_over_idempotency_key(
    connection: AsyncConnection,
    scope: str,
    key: str,
    *,
    seen_locked_until: datetime.datetime | None,
    locked_until: datetime.datetime,
) -> bool:
    """Compare-and-set the lock of an abandoned key; False if someone else took it first."""
    column = idempotency_keys.c.locked_until
    result = await connection.execute(
        idempotency_keys.update()
        .where(
            _key_where(scope, key),
            idempotency_keys.c.state == "started",
            column.is_(None) if seen_locked_until is None else column == seen_locked_until,
        )
        .values(locked_until=locked_until)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def set_recovery_point(connection: AsyncConnection, scope: str, key: str, recovery_point: str) -> None:
    """Record how far a keyed request got (in the transaction of that step)."""
    await connection.execute(
        idempotency_keys.update().where(_key_where(scope, key)).values(recovery_point=recovery_point)
    )


async def complete_idempotency_key(
    connection: AsyncConnection,
    scope: str,
    key: str,
    *,
    response_kind: str,
    response: bytes,
    now: datetime.datetime,
) -> None:
    """Store the outcome; later requests with the key replay it."""
    await connection.execute(
        idempotency_keys.update()
        .where(_key_where(scope, key), idempotency_keys.c.state == "started")
        .values(
            state="completed",
            locked_until=None,
            response_kind=response_kind,
            response=response,
            completed_at=now,
        )
    )


async def unlock_idempotency_key(connection: AsyncConnection, scope: str, key: str) -> None:
    """Release the lock of an unfinished key so a retry or the completer resumes it."""
    await connection.execute(
        idempotency_keys.update()
        .where(_key_where(scope, key), idempotency_keys.c.state == "started")
        .values(locked_until=None)
    )


async def delete_idempotency_key(connection: AsyncConnection, scope: str, key: str) -> None:
    """Forget a key whose request did nothing (validation failed before execution)."""
    await connection.execute(
        idempotency_keys.delete().where(
            _key_where(scope, key),
            idempotency_keys.c.state == "started",
            idempotency_keys.c.recovery_point == "started",
        )
    )


async def abandoned_idempotency_keys(
    connection: AsyncConnection, now: datetime.datetime, limit: int
) -> list[IdempotencyRecord]:
    """Started keys whose lock lapsed (their request died or failed transiently)."""
    lock = idempotency_keys.c.locked_until
    query = (
        idempotency_keys.select()
        .where(idempotency_keys.c.state == "started", sa.or_(lock.is_(None), lock < now))
        .order_by(idempotency_keys.c.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [_record(row) for row in await connection.execute(query)]


async def prune_idempotency_keys(
    connection: AsyncConnection, older_than: datetime.datetime, limit: int
) -> int:
    """Delete up to `limit` completed keys created before `older_than`; returns how many."""
    doomed = (
        sa.select(idempotency_keys.c.scope, idempotency_keys.c.key)
        .where(idempotency_keys.c.created_at < older_than, idempotency_keys.c.state == "completed")
        .limit(limit)
    )
    rows = list(await connection.execute(doomed))
    for row in rows:
        await connection.execute(idempotency_keys.delete().where(_key_where(row.scope, row.key)))
    return len(rows)
