"""Read-side use cases: balances and balance transactions (from the ledger), events."""

from __future__ import annotations

import dataclasses
import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from chassis import errors, ids
from payments_svc.adapters import repository
from payments_svc.adapters.ledger_client import LedgerClient
from payments_svc.domain.events import Event
from payments_svc.domain.ledger import AccountRole, merchant_account
from payments_svc.domain.merchants import Permission
from payments_svc.service_layer.auth import Caller

LIST_LIMIT_DEFAULT = 10
LIST_LIMIT_MAX = 100
# ListBalanceTransactions merges the entries of a merchant's accounts in memory; it reads at most
# this many entries per account (part 1 bound; a local projection replaces it at scale).
ENTRIES_PER_ACCOUNT_MAX = 10_000
ENTRIES_PAGE = 1_000

BALANCE_TYPES = {
    AccountRole.MERCHANT_PENDING: "pending",
    AccountRole.MERCHANT_AVAILABLE: "available",
    AccountRole.MERCHANT_RESERVED: "reserved",
}


@dataclasses.dataclass(frozen=True, slots=True)
class Balance:
    """Amounts per currency, by kind."""

    available: list[tuple[int, str]]
    pending: list[tuple[int, str]]
    reserved: list[tuple[int, str]]


@dataclasses.dataclass(frozen=True, slots=True)
class BalanceTransaction:
    """One posted ledger line of a merchant account, signed from the merchant's view."""

    id: str
    type: str
    amount: int
    currency: str
    balance_type: str
    source: str
    balance_after: int
    created_at: datetime.datetime


def page_limit(limit: int) -> int:
    """0 means the default; otherwise 1-100."""
    value = limit or LIST_LIMIT_DEFAULT
    if not 1 <= value <= LIST_LIMIT_MAX:
        raise errors.InvalidArgument(
            "limit must be 1-100",
            reason="INVALID_LIMIT",
            field_violations=[errors.FieldViolation("limit", "1-100")],
        )
    return value


class ReadService:
    """Balances and events of the caller's merchant."""

    def __init__(self, engine: AsyncEngine, ledger: LedgerClient) -> None:
        self._engine = engine
        self._ledger = ledger

    async def balance(self, caller: Caller) -> Balance:
        """Pending, available and reserved per currency, as the ledger holds them."""
        merchant = caller.require(Permission.READ)
        async with self._engine.connect() as connection:
            currencies = await repository.merchant_currency_list(connection, merchant.id)
        result = Balance([], [], [])
        if not currencies:
            return result
        wanted = {
            merchant_account(merchant.id, currency, role): (currency, role)
            for currency in currencies
            for role in BALANCE_TYPES
        }
        balances = {b.account_id: b for b in await self._ledger.balances(list(wanted))}
        for account_id, (currency, role) in wanted.items():
            found = balances.get(account_id)
            amount = found.balance if found else 0
            target = {
                AccountRole.MERCHANT_PENDING: result.pending,
                AccountRole.MERCHANT_AVAILABLE: result.available,
                AccountRole.MERCHANT_RESERVED: result.reserved,
            }[role]
            target.append((amount, currency))
        return result

    async def balance_transactions(
        self, caller: Caller, *, limit: int, starting_after: str, currency: str, source: str
    ) -> tuple[list[BalanceTransaction], bool]:
        """Posted lines of the merchant's accounts, newest first (cursor: a line id)."""
        merchant = caller.require(Permission.READ)
        limit = page_limit(limit)
        cursor: int | None = None
        if starting_after:
            if not starting_after.isdigit():
                raise errors.InvalidArgument(
                    "starting_after must be a balance transaction id",
                    reason="INVALID_CURSOR",
                    field_violations=[errors.FieldViolation("starting_after", "a balance transaction id")],
                )
            cursor = int(starting_after)
        async with self._engine.connect() as connection:
            currencies = await repository.merchant_currency_list(connection, merchant.id)
        if currency:
            currencies = [c for c in currencies if c == currency.upper()]
        lines: list[BalanceTransaction] = []
        for code in currencies:
            for role, balance_type in BALANCE_TYPES.items():
                lines.extend(
                    await self._account_lines(merchant_account(merchant.id, code, role), balance_type)
                )
        if source:
            lines = [line for line in lines if line.source == source]
        if cursor is not None:
            lines = [line for line in lines if int(line.id) < cursor]
        lines.sort(key=lambda line: int(line.id), reverse=True)
        return lines[:limit], len(lines) > limit

    async def _account_lines(self, account_id: str, balance_type: str) -> list[BalanceTransaction]:
        lines: list[BalanceTransaction] = []
        after = ""
        while len(lines) < ENTRIES_PER_ACCOUNT_MAX:
            entries, more = await self._ledger.entries(account_id, limit=ENTRIES_PAGE, starting_after=after)
            for entry in entries:
                if entry.kind != "POSTED":
                    continue
                # Merchant accounts are liabilities: a credit adds to the merchant's balance.
                sign = 1 if entry.side == "CREDIT" else -1
                lines.append(
                    BalanceTransaction(
                        id=entry.id,
                        type=entry.metadata.get("type", ""),
                        amount=sign * entry.amount,
                        currency=entry.currency,
                        balance_type=balance_type,
                        source=entry.metadata.get("source", ""),
                        balance_after=entry.balance_after,
                        created_at=entry.created_at,
                    )
                )
            if not more or not entries:
                break
            after = entries[-1].id
        return lines

    async def event(self, caller: Caller, event_id: str) -> Event:
        """One event of the caller's merchant."""
        merchant = caller.require(Permission.READ)
        async with self._engine.connect() as connection:
            found = await repository.get_event(connection, event_id, merchant.id)
        if found is None:
            raise errors.NotFound("no such event", reason="EVENT_NOT_FOUND")
        return found

    async def events(
        self, caller: Caller, *, limit: int, starting_after: str, type_: str, object_id: str
    ) -> tuple[list[Event], bool]:
        """One page of the merchant's events, newest first."""
        merchant = caller.require(Permission.READ)
        limit = page_limit(limit)
        if starting_after:
            try:
                ids.parse_id(starting_after, "evt")
            except ids.InvalidId:
                raise errors.InvalidArgument(
                    "starting_after must be an event id",
                    reason="INVALID_CURSOR",
                    field_violations=[errors.FieldViolation("starting_after", "an evt_… id")],
                ) from None
        async with self._engine.connect() as connection:
            return await repository.list_events(
                connection,
                merchant.id,
                limit=limit,
                starting_after=starting_after or None,
                type_=type_ or None,
                object_id=object_id or None,
            )
