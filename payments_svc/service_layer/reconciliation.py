"""Reconciliation: a provider's daily settlement report against our records (DESIGN.md §3).

Per payment and refund, against our captures, refunds and the ledger's transfers.

Our side of a capture is the ledger's posted capture transfer (`<pi>:capture`) of each intent whose
`payment_intent.captured` event falls on the day; of a refund, the ledger's `<re>:refund` transfer
(negative, as in the report) of each refund that succeeded that day. A capture or refund without
its ledger transfer counts as missing from the ledger.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable
from typing import Any

import prometheus_client
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis import errors, ids
from payments_svc.adapters import money_repository as store
from payments_svc.adapters import repository
from payments_svc.adapters.ledger_reader import LedgerReader
from payments_svc.adapters.provider_money import ProviderMoneyClient, ProviderOutcomeUnknown, ProviderRefused
from payments_svc.domain import reconciliation as model
from payments_svc.domain.merchants import Permission
from payments_svc.domain.payments import PROVIDERS
from payments_svc.service_layer.auth import PLATFORM_SCOPE, Caller
from payments_svc.service_layer.idempotency import Idempotency, Ticket
from payments_svc.service_layer.postings import new_event, parse_cursor, valid_id
from payments_svc.service_layer.reads import page_limit
from payments_svc.service_layer.settlement import day_bounds, parse_day

MISMATCHES = prometheus_client.Counter(
    "clearhouse_reconciliation_mismatches_total", "Reconciliation items not matched.", ["provider"]
)


@dataclasses.dataclass(frozen=True, slots=True)
class Reconciliation:
    """One stored comparison."""

    id: str
    merchant_id: str
    provider: str
    date: str
    item_count: int
    matched_count: int
    mismatch_count: int
    report_total: int
    ledger_total: int
    items: tuple[model.Item, ...]
    created_at: datetime.datetime


def _item_json(item: model.Item) -> dict[str, Any]:
    data = dataclasses.asdict(item)
    data["result"] = item.result.value
    return data


def _reconciliation(row: Any, with_items: bool = True) -> Reconciliation:
    items = tuple(
        model.Item(**{**data, "result": model.Result(data["result"])})
        for data in (row.items if with_items else [])
    )
    return Reconciliation(
        id=row.id,
        merchant_id=row.merchant_id,
        provider=row.provider,
        date=row.date,
        item_count=row.item_count,
        matched_count=row.matched_count,
        mismatch_count=row.mismatch_count,
        report_total=row.report_total,
        ledger_total=row.ledger_total,
        items=items,
        created_at=repository.utc(row.created_at) or row.created_at,
    )


class ReconciliationService:
    """Create and read reconciliations."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        idempotency: Idempotency,
        provider: ProviderMoneyClient,
        ledger: LedgerReader,
        render: Callable[[Reconciliation], dict[str, Any]],
        clock: Callable[[], datetime.datetime],
    ) -> None:
        self._engine = engine
        self._idempotency = idempotency
        self._provider = provider
        self._ledger = ledger
        self._render = render
        self._clock = clock

    async def create(self, caller: Caller, provider: str, date: str, ticket: Ticket | None) -> Reconciliation:
        """Compare the provider's report of `date` with our records (one merchant's, for its key)."""
        merchant_id = "" if caller.is_platform else caller.require(Permission.READ).id
        if provider not in PROVIDERS:
            raise errors.InvalidArgument(
                "provider must be provider_a or provider_b",
                reason="UNKNOWN_PROVIDER",
                field_violations=[errors.FieldViolation("provider", "provider_a or provider_b")],
            )
        if not date:
            raise errors.InvalidArgument(
                "date is required",
                reason="INVALID_DATE",
                field_violations=[errors.FieldViolation("date", "YYYY-MM-DD")],
            )
        day = parse_day(date, "date", self._clock().date())
        try:
            rows = await self._provider.settlement_report(provider, day.isoformat())
        except (ProviderRefused, ProviderOutcomeUnknown) as failure:
            raise errors.Unavailable(
                f"the provider's report could not be read ({failure})",
                reason="PROVIDER_REPORT_UNAVAILABLE",
                retry_after_seconds=5.0,
            ) from None
        report = [
            model.Movement(r.merchant_reference, r.type, r.amount, r.currency, r.merchant_id, r.reference)
            for r in rows
            if not merchant_id or r.merchant_id == merchant_id
        ]
        ours = await self._ours(provider, day, merchant_id)
        items = model.compare(report, ours)
        mismatches = sum(1 for i in items if i.result is not model.Result.MATCHED)
        now = self._clock()
        found = Reconciliation(
            id=ids.new_id("rcn"),
            merchant_id=merchant_id,
            provider=provider,
            date=day.isoformat(),
            item_count=len(items),
            matched_count=len(items) - mismatches,
            mismatch_count=mismatches,
            report_total=sum(m.amount for m in report),
            ledger_total=sum(m.amount for m in ours),
            items=tuple(items),
            created_at=now,
        )
        owner = merchant_id or PLATFORM_SCOPE
        rendered = self._render(dataclasses.replace(found, items=()))
        batch = [new_event("reconciliation.completed", owner, found.id, rendered, now)]
        if mismatches:
            batch.append(new_event("reconciliation.mismatches_found", owner, found.id, rendered, now))
        async with self._engine.begin() as connection:
            await store.insert_reconciliation(
                connection,
                {
                    "id": found.id,
                    "merchant_id": merchant_id,
                    "provider": provider,
                    "date": found.date,
                    "item_count": found.item_count,
                    "matched_count": found.matched_count,
                    "mismatch_count": found.mismatch_count,
                    "report_total": found.report_total,
                    "ledger_total": found.ledger_total,
                    "items": [_item_json(i) for i in items],
                    "created_at": now,
                },
            )
            await repository.insert_events(connection, batch)
            await self._idempotency.complete(connection, ticket, found)
        if mismatches:
            MISMATCHES.labels(provider=provider).inc(mismatches)
        return found

    async def _ours(self, provider: str, day: datetime.date, merchant_id: str) -> list[model.Movement]:
        start, end = day_bounds(day)
        async with self._engine.connect() as connection:
            captures = await store.captures_between(connection, provider, start, end, merchant_id)
            refunds = await store.refunds_succeeded_between(connection, provider, start, end, merchant_id)
        transfer_ids = [f"{c.id}:capture" for c in captures] + [f"{r.id}:refund" for r, _ in refunds]
        posted = await self._ledger.posted_amounts(transfer_ids)
        ours: list[model.Movement] = []
        for capture in captures:
            found = posted.get(f"{capture.id}:capture")
            if found is not None:
                ours.append(
                    model.Movement(
                        capture.id,
                        "capture",
                        found[0],
                        found[1],
                        capture.merchant_id,
                        capture.provider_reference,
                    )
                )
        for refund, _ in refunds:
            found = posted.get(f"{refund.id}:refund")
            if found is not None:
                ours.append(
                    model.Movement(
                        refund.id,
                        "refund",
                        -found[0],
                        found[1],
                        refund.merchant_id,
                        refund.provider_reference,
                    )
                )
        return ours

    async def get(self, caller: Caller, recon_id: str) -> Reconciliation:
        """One report with its items (a merchant sees its own runs; the admin sees all)."""
        merchant_id = None if caller.is_platform else caller.require(Permission.READ).id
        row = None
        if valid_id(recon_id, "rcn"):
            async with self._engine.connect() as connection:
                row = await store.get_reconciliation(connection, recon_id, merchant_id)
        if row is None:
            raise errors.NotFound("no such reconciliation", reason="RECONCILIATION_NOT_FOUND")
        return _reconciliation(row)

    async def list_page(
        self, caller: Caller, limit: int, starting_after: str
    ) -> tuple[list[Reconciliation], bool]:
        """One page, newest first, without items."""
        merchant_id = None if caller.is_platform else caller.require(Permission.READ).id
        async with self._engine.connect() as connection:
            rows, more = await store.list_reconciliations(
                connection,
                merchant_id,
                limit=page_limit(limit),
                starting_after=parse_cursor(starting_after, "rcn"),
            )
        return [_reconciliation(r, with_items=False) for r in rows], more
