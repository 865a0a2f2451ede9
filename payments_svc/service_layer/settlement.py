"""Settlement: captured-not-settled payments batched per merchant, provider and currency.

One transaction per run stores the settlements and their lines (a payment's line is its primary
key, so no payment is ever settled twice, even by concurrent runs), moves CAPTURED intents to
SETTLED, records the events and queues the ledger postings (pending → available, provider
receivable → platform cash); the postings are flushed right after.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from chassis import errors, ids
from payments_svc.adapters import money_repository as store
from payments_svc.adapters import repository
from payments_svc.domain import postings as book
from payments_svc.domain.events import INTENT_EVENT_TYPES
from payments_svc.domain.merchants import Permission
from payments_svc.domain.payments import PaymentIntent, Status
from payments_svc.service_layer.auth import Caller
from payments_svc.service_layer.idempotency import Idempotency, Ticket
from payments_svc.service_layer.postings import Postings, Queued, new_event, parse_cursor, valid_id
from payments_svc.service_layer.reads import page_limit

# Payments settled by one run at most; the rest wait for the next run.
SETTLEMENT_PAYMENTS_MAX = 5_000


@dataclasses.dataclass(frozen=True, slots=True)
class SettlementLine:
    """One settled payment."""

    payment_intent: str
    amount: int
    fee: int
    net: int


@dataclasses.dataclass(frozen=True, slots=True)
class Settlement:
    """One batch of one merchant, provider and currency."""

    id: str
    merchant_id: str
    provider: str
    currency: str
    as_of: str
    gross_amount: int
    fee_amount: int
    net_amount: int
    payment_count: int
    lines: tuple[SettlementLine, ...]
    created_at: datetime.datetime


def parse_day(value: str, field: str, today: datetime.date) -> datetime.date:
    """A "YYYY-MM-DD" day; empty means today."""
    if not value:
        return today
    try:
        return datetime.date.fromisoformat(value) if len(value) == 10 else _bad_day(field)
    except ValueError:
        return _bad_day(field)


def _bad_day(field: str) -> datetime.date:
    raise errors.InvalidArgument(
        f"{field} must be a date YYYY-MM-DD",
        reason="INVALID_DATE",
        field_violations=[errors.FieldViolation(field, "YYYY-MM-DD")],
    )


def day_bounds(day: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    """[start, end) of a UTC day."""
    start = datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.UTC)
    return start, start + datetime.timedelta(days=1)


def _settlement(row: Any, lines: list[Any]) -> Settlement:
    return Settlement(
        id=row.id,
        merchant_id=row.merchant_id,
        provider=row.provider,
        currency=row.currency,
        as_of=row.as_of,
        gross_amount=row.gross_amount,
        fee_amount=row.fee_amount,
        net_amount=row.net_amount,
        payment_count=row.payment_count,
        lines=tuple(SettlementLine(r.payment_intent_id, r.amount, r.fee, r.net) for r in lines),
        created_at=repository.utc(row.created_at) or row.created_at,
    )


class SettlementService:
    """Runs, reads."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        idempotency: Idempotency,
        postings: Postings,
        render_settlement: Callable[[Settlement], dict[str, Any]],
        render_intent: Callable[[PaymentIntent], dict[str, Any]],
        clock: Callable[[], datetime.datetime],
        delay_days: int,
    ) -> None:
        self._engine = engine
        self._idempotency = idempotency
        self._postings = postings
        self._render = render_settlement
        self._render_intent = render_intent
        self._clock = clock
        self._delay_days = delay_days

    async def run(
        self, caller: Caller, as_of: str, merchant_id: str, ticket: Ticket | None
    ) -> list[Settlement]:
        """Settle payments captured before the end of `as_of` (platform admin)."""
        caller.require_platform()
        day = parse_day(as_of, "as_of", self._clock().date())
        if merchant_id and not valid_id(merchant_id, "mch"):
            raise errors.NotFound("no such merchant", reason="MERCHANT_NOT_FOUND")
        return await self._run(day, merchant_id, ticket)

    async def run_scheduled(self) -> int:
        """Job pass: settle everything captured up to `delay_days` ago; returns payments settled."""
        day = self._clock().date() - datetime.timedelta(days=self._delay_days)
        return sum(s.payment_count for s in await self._run(day, "", None))

    async def _run(self, day: datetime.date, merchant_id: str, ticket: Ticket | None) -> list[Settlement]:
        now = self._clock()
        _, end = day_bounds(day)
        created: list[Settlement] = []
        queued: list[Queued] = []
        async with self._engine.begin() as connection:
            candidates = await store.settlement_candidates(
                connection, end, merchant_id, SETTLEMENT_PAYMENTS_MAX
            )
            groups: dict[tuple[str, str, str], list[store.Candidate]] = collections.defaultdict(list)
            for candidate in candidates:
                groups[(candidate.merchant_id, candidate.provider, candidate.currency)].append(candidate)
            for (merchant, provider, currency), members in sorted(groups.items()):
                lines = tuple(
                    SettlementLine(
                        m.intent_id, m.amount_captured, m.fee_amount, m.amount_captured - m.fee_amount
                    )
                    for m in members
                )
                settlement = Settlement(
                    id=ids.new_id("stl"),
                    merchant_id=merchant,
                    provider=provider,
                    currency=currency,
                    as_of=day.isoformat(),
                    gross_amount=sum(line.amount for line in lines),
                    fee_amount=sum(line.fee for line in lines),
                    net_amount=sum(line.net for line in lines),
                    payment_count=len(lines),
                    lines=lines,
                    created_at=now,
                )
                await store.insert_settlement(
                    connection,
                    {
                        "id": settlement.id,
                        "merchant_id": merchant,
                        "provider": provider,
                        "currency": currency,
                        "as_of": settlement.as_of,
                        "gross_amount": settlement.gross_amount,
                        "fee_amount": settlement.fee_amount,
                        "net_amount": settlement.net_amount,
                        "payment_count": settlement.payment_count,
                        "created_at": now,
                    },
                    [
                        {
                            "payment_intent_id": line.payment_intent,
                            "amount": line.amount,
                            "fee": line.fee,
                            "net": line.net,
                        }
                        for line in lines
                    ],
                )
                batch = [
                    new_event("settlement.completed", merchant, settlement.id, self._render(settlement), now)
                ]
                for member in members:
                    if member.status is Status.CAPTURED and await store.mark_intent_settled(
                        connection, member.intent_id, now
                    ):
                        intent = await repository.get_intent(connection, member.intent_id)
                        assert intent is not None
                        batch.append(
                            new_event(
                                INTENT_EVENT_TYPES[Status.SETTLED],
                                merchant,
                                intent.id,
                                self._render_intent(intent),
                                now,
                            )
                        )
                await repository.insert_events(connection, batch)
                queued.append(
                    await self._postings.queue(
                        connection,
                        f"{settlement.id}:settle",
                        merchant,
                        currency,
                        book.settlement_transfers(
                            merchant, settlement.id, settlement.gross_amount, settlement.net_amount, currency
                        ),
                    )
                )
                created.append(settlement)
            await self._idempotency.complete(connection, ticket, created)
        await self._postings.flush(queued)
        return created

    async def get(self, caller: Caller, settlement_id: str) -> Settlement:
        """One settlement with its lines (the platform admin sees all)."""
        merchant_id = None if caller.is_platform else caller.require(Permission.READ).id
        found = None
        if valid_id(settlement_id, "stl"):
            async with self._engine.connect() as connection:
                found = await store.get_settlement(connection, settlement_id, merchant_id)
        if found is None:
            raise errors.NotFound("no such settlement", reason="SETTLEMENT_NOT_FOUND")
        return _settlement(*found)

    async def list_page(
        self, caller: Caller, limit: int, starting_after: str
    ) -> tuple[list[Settlement], bool]:
        """One page, newest first (lines omitted)."""
        merchant_id = None if caller.is_platform else caller.require(Permission.READ).id
        async with self._engine.connect() as connection:
            rows, more = await store.list_settlements(
                connection,
                merchant_id,
                limit=page_limit(limit),
                starting_after=parse_cursor(starting_after, "stl"),
            )
        return [_settlement(row, []) for row in rows], more
