"""Payouts: available balance to the merchant's (simulated) bank, `pending → paid | failed`.

The check "never more than available" and the hold happen together: under a lock of the
merchant's row, the ledger's available balance (posted, minus payouts already held) is read, the
payout is stored PENDING and its two-phase hold (available → platform cash, pending) is queued;
the hold is posted before the bank is asked. The bank's answer posts the hold (PAID) or voids it
(FAILED: the funds return to available).
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import re
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis import errors, ids
from payments_svc.adapters import money_repository as store
from payments_svc.adapters import repository
from payments_svc.adapters.bank import SimulatedBank
from payments_svc.adapters.ledger_client import LedgerClient
from payments_svc.adapters.orm import merchants
from payments_svc.domain import postings as book
from payments_svc.domain.ledger import AccountRole, merchant_account
from payments_svc.domain.merchants import Permission, validate_currency
from payments_svc.domain.payments import validate_amount
from payments_svc.service_layer.auth import Caller
from payments_svc.service_layer.errors import translated
from payments_svc.service_layer.idempotency import Idempotency, Ticket
from payments_svc.service_layer.postings import Postings, new_event, parse_cursor, valid_id
from payments_svc.service_layer.reads import page_limit

log = logging.getLogger("payments.payouts")
DESCRIPTION_LENGTH_MAX = 500
JOB_BATCH_MAX = 100
# A PENDING payout older than this has lost its request (crash); the job finishes it.
STALLED_AFTER_SECONDS = 60.0
_BANK_ACCOUNT = re.compile(r"^[0-9]{6,34}$")


@dataclasses.dataclass(frozen=True, slots=True)
class Payout:
    """Money sent to the merchant's bank."""

    id: str
    merchant_id: str
    amount: int
    currency: str
    status: str
    bank_account: str
    failure_code: str
    failure_message: str
    description: str
    created_at: datetime.datetime
    updated_at: datetime.datetime


def _payout(row: Any) -> Payout:
    return Payout(
        id=row.id,
        merchant_id=row.merchant_id,
        amount=row.amount,
        currency=row.currency,
        status=row.status,
        bank_account=row.bank_account,
        failure_code=row.failure_code,
        failure_message=row.failure_message,
        description=row.description,
        created_at=repository.utc(row.created_at) or row.created_at,
        updated_at=repository.utc(row.updated_at) or row.updated_at,
    )


class PayoutService:
    """Create, finish, read."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        idempotency: Idempotency,
        ledger: LedgerClient,
        bank: SimulatedBank,
        postings: Postings,
        render_payout: Callable[[Payout], dict[str, Any]],
        clock: Callable[[], datetime.datetime],
    ) -> None:
        self._engine = engine
        self._idempotency = idempotency
        self._ledger = ledger
        self._bank = bank
        self._postings = postings
        self._render = render_payout
        self._clock = clock

    async def available(self, merchant_id: str, currency: str) -> int:
        """Posted available balance minus payouts held (pending debits)."""
        account = merchant_account(merchant_id, currency, AccountRole.MERCHANT_AVAILABLE)
        found = await self._ledger.balances([account])
        if not found:
            return 0
        return found[0].balance + min(0, found[0].pending_balance)

    async def create(
        self,
        caller: Caller,
        amount: int,
        currency: str,
        *,
        bank_account: str,
        description: str,
        ticket: Ticket | None,
    ) -> Payout:
        """Hold the funds, ask the bank, then PAID or FAILED (funds returned)."""
        merchant = caller.require(Permission.TRANSACT)
        with translated():
            amount = validate_amount(amount)
            currency = validate_currency(currency)
        account = bank_account or merchant.payout_bank_account
        if not _BANK_ACCOUNT.match(account):
            raise errors.InvalidArgument(
                "bank_account must be 6-34 digits",
                reason="INVALID_BANK_ACCOUNT",
                field_violations=[errors.FieldViolation("bank_account", "6-34 digits")],
            )
        if len(description) > DESCRIPTION_LENGTH_MAX:
            raise errors.InvalidArgument(
                "description must be at most 500 characters",
                reason="INVALID_DESCRIPTION",
                field_violations=[errors.FieldViolation("description", "at most 500 characters")],
            )
        now = self._clock()
        payout = Payout(
            ids.new_id("po"), merchant.id, amount, currency, "PENDING", account, "", "", description, now, now
        )
        async with self._engine.begin() as connection:
            # One payout at a time per merchant: the balance read and the hold are one step.
            await connection.execute(
                sa.select(merchants.c.id).where(merchants.c.id == merchant.id).with_for_update()
            )
            available = await self.available(merchant.id, currency)
            if amount > available:
                raise errors.FailedPrecondition(
                    f"the payout exceeds the available balance ({available} {currency})",
                    reason="INSUFFICIENT_AVAILABLE_BALANCE",
                )
            await store.insert_payout(connection, _values(payout))
            await repository.insert_events(connection, [self._event(payout, "payout.created")])
            # The hold must be in the ledger before the lock is released, or a second payout
            # could read the same available balance; a failure rolls the payout back.
            await self._postings.post_now(
                connection,
                f"{payout.id}:hold",
                merchant.id,
                currency,
                [book.payout_pending_transfer(merchant.id, payout.id, amount, currency)],
            )
        return await self._finish(payout, ticket)

    async def _finish(self, payout: Payout, ticket: Ticket | None) -> Payout:
        result = await self._bank.transfer(
            account=payout.bank_account, amount=payout.amount, currency=payout.currency, reference=payout.id
        )
        now = self._clock()
        after = dataclasses.replace(
            payout,
            status="PAID" if result.paid else "FAILED",
            failure_code=result.failure_code,
            failure_message=result.failure_message,
            updated_at=now,
        )
        async with self._engine.begin() as connection:
            if not await store.update_payout(connection, payout.id, "PENDING", _values(after)):
                row = await store.get_payout(connection, payout.id)
                assert row is not None
                current = _payout(row)
                await self._idempotency.complete(connection, ticket, current)
                return current
            await repository.insert_events(
                connection, [self._event(after, "payout.paid" if result.paid else "payout.failed")]
            )
            queued = await self._postings.queue(
                connection,
                f"{payout.id}:outcome",
                payout.merchant_id,
                payout.currency,
                [book.payout_outcome_transfer(payout.id, payout.amount, payout.currency, paid=result.paid)],
            )
            await self._idempotency.complete(connection, ticket, after)
        await self._postings.flush([queued])
        return after

    async def process(self) -> int:
        """Job pass: finish payouts whose request died after the hold."""
        older_than = self._clock() - datetime.timedelta(seconds=STALLED_AFTER_SECONDS)
        async with self._engine.begin() as connection:
            payout_ids = await store.stalled_payouts(connection, older_than, JOB_BATCH_MAX)
        done = 0
        for payout_id in payout_ids:
            async with self._engine.connect() as connection:
                row = await store.get_payout(connection, payout_id)
            if row is None or row.status != "PENDING":
                continue
            payout = _payout(row)
            try:
                await self._finish(payout, None)
                done += 1
            except Exception:
                log.warning("could not finish payout", extra={"payout": payout_id}, exc_info=True)
        return done

    async def get(self, caller: Caller, payout_id: str) -> Payout:
        """One payout of the merchant."""
        merchant = caller.require(Permission.READ)
        row = None
        if valid_id(payout_id, "po"):
            async with self._engine.connect() as connection:
                row = await store.get_payout(connection, payout_id, merchant.id)
        if row is None:
            raise errors.NotFound("no such payout", reason="PAYOUT_NOT_FOUND")
        return _payout(row)

    async def list_page(
        self, caller: Caller, limit: int, starting_after: str, status: str
    ) -> tuple[list[Payout], bool]:
        """One page, newest first."""
        merchant = caller.require(Permission.READ)
        async with self._engine.connect() as connection:
            rows, more = await store.list_payouts(
                connection,
                merchant.id,
                limit=page_limit(limit),
                starting_after=parse_cursor(starting_after, "po"),
                status=status,
            )
        return [_payout(r) for r in rows], more

    def _event(self, payout: Payout, type_: str) -> Any:
        return new_event(type_, payout.merchant_id, payout.id, self._render(payout), payout.updated_at)


def _values(payout: Payout) -> dict[str, Any]:
    return {
        "id": payout.id,
        "merchant_id": payout.merchant_id,
        "amount": payout.amount,
        "currency": payout.currency,
        "status": payout.status,
        "bank_account": payout.bank_account,
        "failure_code": payout.failure_code,
        "failure_message": payout.failure_message,
        "description": payout.description,
        "created_at": payout.created_at,
        "updated_at": payout.updated_at,
    }
