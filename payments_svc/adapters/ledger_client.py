"""Client of the ledger (`clearhouse.ledger.v1.Ledger`): the chart of accounts and postings.

Accounts are created on demand per merchant and currency (CreateAccounts is idempotent: EXISTS is
fine); this process remembers which charts it has created so the hot path skips the call. Every
transfer id is deterministic, so a retry gets EXISTS, which counts as success.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence

import grpc
from clearhouse.ledger.v1 import ledger_pb2, ledger_pb2_grpc

from chassis import errors
from payments_svc.domain.ledger import AccountSpec, AccountType, TransferSpec, chart

# Remembered charts per process; beyond this the set is cleared (it is only a shortcut).
KNOWN_CHARTS_MAX = 100_000
ENTRIES_PAGE_MAX = 1_000

_ACCOUNT_OK = frozenset({ledger_pb2.CreateAccountResult.OK, ledger_pb2.CreateAccountResult.EXISTS})
_TRANSFER_OK = frozenset({ledger_pb2.CreateTransferResult.OK, ledger_pb2.CreateTransferResult.EXISTS})


class LedgerRefused(Exception):
    """The ledger refused a transfer or account (a bug or an inconsistency, never a retry case)."""

    def __init__(self, results: dict[str, str]) -> None:
        super().__init__(", ".join(f"{k}: {v}" for k, v in results.items()))
        self.results = results


@dataclasses.dataclass(frozen=True, slots=True)
class AccountBalance:
    """Posted and pending balance of one account on its normal side."""

    account_id: str
    currency: str
    balance: int
    pending_balance: int


@dataclasses.dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One posted line of an account's history."""

    id: str
    transfer_id: str
    account_id: str
    side: str
    kind: str
    amount: int
    currency: str
    balance_after: int
    metadata: dict[str, str]
    created_at: datetime.datetime


def _unavailable(error: grpc.aio.AioRpcError) -> errors.ClearhouseError:
    remote = errors.from_rpc_error(error)
    return errors.Unavailable(
        f"the ledger is unavailable ({remote.code.name})",
        reason="LEDGER_UNAVAILABLE",
        retry_after_seconds=1.0,
    )


def _account(spec: AccountSpec) -> ledger_pb2.Account:
    account = ledger_pb2.Account(
        id=spec.id,
        currency=spec.currency,
        type=ledger_pb2.Account.Type.Value(spec.type.value),
        code=int(spec.role),
    )
    if spec.merchant_id:
        account.metadata["merchant_id"] = spec.merchant_id
    return account


def _transfer(spec: TransferSpec) -> ledger_pb2.Transfer:
    transfer = ledger_pb2.Transfer(
        id=spec.id,
        debit_account_id=spec.debit_account_id,
        credit_account_id=spec.credit_account_id,
        amount=spec.amount,
        currency=spec.currency,
        code=int(spec.code),
        pending_id=spec.pending_id,
        flags=ledger_pb2.TransferFlags(
            linked=spec.linked,
            pending=spec.pending,
            post_pending_transfer=spec.post_pending,
            void_pending_transfer=spec.void_pending,
        ),
    )
    if spec.source:
        transfer.metadata["source"] = spec.source
    if spec.kind:
        transfer.metadata["type"] = spec.kind
    return transfer


class LedgerClient:
    """Ledger calls, each with a deadline."""

    def __init__(self, channel: grpc.aio.Channel, timeout_seconds: float) -> None:
        self._stub = ledger_pb2_grpc.LedgerStub(channel)
        self._timeout_seconds = timeout_seconds
        self._known_charts: set[tuple[str, str]] = set()

    async def ensure_chart(self, merchant_id: str, currency: str) -> bool:
        """Create the merchant's accounts in `currency` unless known; True if a call was made."""
        if (merchant_id, currency) in self._known_charts:
            return False
        specs = chart(merchant_id, currency)
        request = ledger_pb2.CreateAccountsRequest(accounts=[_account(s) for s in specs])
        try:
            response = await self._stub.CreateAccounts(request, timeout=self._timeout_seconds)
        except grpc.aio.AioRpcError as error:
            raise _unavailable(error) from None
        refused = {
            r.id: ledger_pb2.CreateAccountResult.Result.Name(r.result)
            for r in response.results
            if r.result not in _ACCOUNT_OK
        }
        if refused:
            raise LedgerRefused(refused)
        if len(self._known_charts) >= KNOWN_CHARTS_MAX:
            self._known_charts.clear()
        self._known_charts.add((merchant_id, currency))
        return True

    async def post(self, transfers: Sequence[TransferSpec]) -> None:
        """Apply transfers in order; OK and EXISTS both count as done."""
        if not transfers:
            return
        request = ledger_pb2.CreateTransfersRequest(transfers=[_transfer(t) for t in transfers])
        try:
            response = await self._stub.CreateTransfers(request, timeout=self._timeout_seconds)
        except grpc.aio.AioRpcError as error:
            raise _unavailable(error) from None
        refused = {
            r.id: ledger_pb2.CreateTransferResult.Result.Name(r.result)
            for r in response.results
            if r.result not in _TRANSFER_OK
        }
        if refused:
            raise LedgerRefused(refused)

    async def transfer_states(self, ids: Sequence[str]) -> dict[str, str]:
        """State name of each existing transfer among `ids`."""
        try:
            response = await self._stub.LookupTransfers(
                ledger_pb2.LookupTransfersRequest(ids=list(ids)), timeout=self._timeout_seconds
            )
        except grpc.aio.AioRpcError as error:
            raise _unavailable(error) from None
        return {t.id: ledger_pb2.Transfer.State.Name(t.state) for t in response.transfers}

    async def balances(self, account_ids: Sequence[str]) -> list[AccountBalance]:
        """Balances of the accounts that exist among `account_ids`."""
        try:
            response = await self._stub.GetBalances(
                ledger_pb2.GetBalancesRequest(account_ids=list(account_ids)), timeout=self._timeout_seconds
            )
        except grpc.aio.AioRpcError as error:
            raise _unavailable(error) from None
        return [
            AccountBalance(b.account_id, b.currency, b.balance, b.pending_balance) for b in response.balances
        ]

    async def entries(
        self, account_id: str, *, limit: int, starting_after: str = ""
    ) -> tuple[list[LedgerEntry], bool]:
        """One page of an account's entries, oldest first, and whether more follow."""
        request = ledger_pb2.ListEntriesRequest(
            account_id=account_id, limit=min(limit, ENTRIES_PAGE_MAX), starting_after=starting_after
        )
        try:
            response = await self._stub.ListEntries(request, timeout=self._timeout_seconds)
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.NOT_FOUND:
                return [], False
            raise _unavailable(error) from None
        return [
            LedgerEntry(
                id=e.id,
                transfer_id=e.transfer_id,
                account_id=e.account_id,
                side=ledger_pb2.Entry.Side.Name(e.side),
                kind=ledger_pb2.Entry.Kind.Name(e.kind),
                amount=e.amount,
                currency=e.currency,
                balance_after=e.balance_after,
                metadata=dict(e.metadata),
                created_at=e.created_at.ToDatetime(tzinfo=datetime.UTC),
            )
            for e in response.data
        ], response.has_more


__all__ = ["AccountBalance", "AccountType", "LedgerClient", "LedgerEntry", "LedgerRefused"]
