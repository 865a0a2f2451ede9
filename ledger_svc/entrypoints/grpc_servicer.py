"""gRPC entry point of the ledger service: thin translation between protobuf and handlers."""

from __future__ import annotations

import prometheus_client
from clearhouse.ledger.v1 import ledger_pb2, ledger_pb2_grpc
from google.protobuf import timestamp_pb2

from chassis import context, errors, tls
from ledger_svc.domain.model import Account, AccountType, NewAccount, Transfer, TransferRequest
from ledger_svc.service_layer.handlers import LedgerService

_ACCOUNT_RESULT = ledger_pb2.CreateAccountResult
_TRANSFER_RESULT = ledger_pb2.CreateTransferResult
# Every platform identity may call the ledger (payments on the hot path, tools for operators).
ALLOWED_CALLERS = frozenset(tls.SERVICE_IDENTITIES)


def _timestamp(microseconds: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(
        seconds=microseconds // 1_000_000, nanos=(microseconds % 1_000_000) * 1_000
    )


def _microseconds(timestamp: timestamp_pb2.Timestamp) -> int:
    return timestamp.seconds * 1_000_000 + timestamp.nanos // 1_000


def _authorize(plaintext: bool) -> None:
    caller = context.current().peer_service
    if caller is None and plaintext:
        return
    if caller not in ALLOWED_CALLERS:
        raise errors.PermissionDenied("the ledger serves platform services only", reason="CALLER_NOT_ALLOWED")


def account_to_proto(account: Account) -> ledger_pb2.Account:
    """Protobuf of a stored account."""
    message = ledger_pb2.Account(
        id=account.id,
        currency=account.currency,
        type=int(account.type),  # type: ignore[arg-type]
        flags=ledger_pb2.AccountFlags(
            debits_must_not_exceed_credits=account.debits_must_not_exceed_credits,
            credits_must_not_exceed_debits=account.credits_must_not_exceed_debits,
        ),
        code=account.code,
        debits_posted=account.debits_posted,
        credits_posted=account.credits_posted,
        debits_pending=account.debits_pending,
        credits_pending=account.credits_pending,
        balance=account.balance,
        created_at=_timestamp(account.created_at_us),
    )
    message.metadata.update(account.metadata)
    return message


def transfer_to_proto(transfer: Transfer) -> ledger_pb2.Transfer:
    """Protobuf of a stored transfer."""
    message = ledger_pb2.Transfer(
        id=transfer.id,
        debit_account_id=transfer.debit_account_id,
        credit_account_id=transfer.credit_account_id,
        amount=transfer.amount,
        currency=transfer.currency,
        code=transfer.code,
        flags=ledger_pb2.TransferFlags(
            linked=transfer.linked,
            pending=transfer.pending,
            post_pending_transfer=transfer.post_pending_transfer,
            void_pending_transfer=transfer.void_pending_transfer,
        ),
        pending_id=transfer.pending_id,
        timeout_seconds=transfer.timeout_seconds,
        state=int(transfer.state),  # type: ignore[arg-type]
        created_at=_timestamp(transfer.created_at_us),
        amount_posted=transfer.amount_posted,
    )
    message.metadata.update(transfer.metadata)
    return message


def transfer_request(message: ledger_pb2.Transfer) -> TransferRequest:
    """The command for one transfer of a request."""
    flags = message.flags
    return TransferRequest(
        id=message.id,
        debit_account_id=message.debit_account_id,
        credit_account_id=message.credit_account_id,
        amount=message.amount,
        currency=message.currency,
        code=message.code,
        linked=flags.linked,
        pending=flags.pending,
        post_pending_transfer=flags.post_pending_transfer,
        void_pending_transfer=flags.void_pending_transfer,
        pending_id=message.pending_id,
        timeout_seconds=message.timeout_seconds,
        metadata=dict(message.metadata),
    )


def _new_account(message: ledger_pb2.Account, index: int) -> NewAccount:
    if (
        message.debits_posted
        or message.credits_posted
        or message.debits_pending
        or message.credits_pending
        or message.balance
    ):
        raise errors.InvalidArgument(
            "account balances are output only",
            reason="OUTPUT_ONLY_FIELD_SET",
            field_violations=[errors.FieldViolation(f"accounts[{index}]", "balances must be zero")],
        )
    return NewAccount(
        id=message.id,
        currency=message.currency,
        type=AccountType(message.type) if message.type in AccountType._value2member_map_ else AccountType(0),
        code=message.code,
        debits_must_not_exceed_credits=message.flags.debits_must_not_exceed_credits,
        credits_must_not_exceed_debits=message.flags.credits_must_not_exceed_debits,
        linked=message.flags.linked,
        metadata=dict(message.metadata),
    )


# Transfers by result (OK, EXISTS, EXCEEDS_CREDITS, …): the ledger's rate and its refusals.
TRANSFERS_TOTAL = prometheus_client.Counter(
    "clearhouse_ledger_transfers_total", "Ledger transfers processed, by result.", ["result"]
)


class LedgerServicer(ledger_pb2_grpc.LedgerServicer):
    """gRPC `clearhouse.ledger.v1.Ledger`."""

    def __init__(self, service: LedgerService, *, plaintext: bool = False) -> None:
        self._service = service
        self._plaintext = plaintext

    async def CreateAccounts(  # noqa: N802
        self, request: ledger_pb2.CreateAccountsRequest, context: object
    ) -> ledger_pb2.CreateAccountsResponse:
        _authorize(self._plaintext)
        commands = [_new_account(message, index) for index, message in enumerate(request.accounts)]
        results = await self._service.create_accounts(commands)
        return ledger_pb2.CreateAccountsResponse(
            results=[
                _ACCOUNT_RESULT(index=index, id=command.id, result=int(result))  # type: ignore[arg-type]
                for index, (command, result) in enumerate(zip(commands, results, strict=True))
            ]
        )

    async def CreateTransfers(  # noqa: N802
        self, request: ledger_pb2.CreateTransfersRequest, context: object
    ) -> ledger_pb2.CreateTransfersResponse:
        _authorize(self._plaintext)
        commands = [transfer_request(message) for message in request.transfers]
        results, batch_id = await self._service.create_transfers(commands)
        for result in results:
            TRANSFERS_TOTAL.labels(_TRANSFER_RESULT.Result.Name(int(result))).inc()  # type: ignore[arg-type]
        return ledger_pb2.CreateTransfersResponse(
            results=[
                _TRANSFER_RESULT(index=index, id=command.id, result=int(result))  # type: ignore[arg-type]
                for index, (command, result) in enumerate(zip(commands, results, strict=True))
            ],
            batch_id=batch_id,
        )

    async def LookupAccounts(  # noqa: N802
        self, request: ledger_pb2.LookupAccountsRequest, context: object
    ) -> ledger_pb2.LookupAccountsResponse:
        _authorize(self._plaintext)
        found = await self._service.lookup_accounts(list(request.ids))
        return ledger_pb2.LookupAccountsResponse(accounts=[account_to_proto(a) for a in found])

    async def LookupTransfers(  # noqa: N802
        self, request: ledger_pb2.LookupTransfersRequest, context: object
    ) -> ledger_pb2.LookupTransfersResponse:
        _authorize(self._plaintext)
        found = await self._service.lookup_transfers(list(request.ids))
        return ledger_pb2.LookupTransfersResponse(transfers=[transfer_to_proto(t) for t in found])

    async def GetBalances(  # noqa: N802
        self, request: ledger_pb2.GetBalancesRequest, context: object
    ) -> ledger_pb2.GetBalancesResponse:
        _authorize(self._plaintext)
        found = await self._service.lookup_accounts(list(request.account_ids))
        return ledger_pb2.GetBalancesResponse(
            balances=[
                ledger_pb2.Balance(
                    account_id=a.id,
                    currency=a.currency,
                    debits_posted=a.debits_posted,
                    credits_posted=a.credits_posted,
                    debits_pending=a.debits_pending,
                    credits_pending=a.credits_pending,
                    balance=a.balance,
                    pending_balance=a.pending_balance,
                )
                for a in found
            ]
        )

    async def ListEntries(  # noqa: N802
        self, request: ledger_pb2.ListEntriesRequest, context: object
    ) -> ledger_pb2.ListEntriesResponse:
        _authorize(self._plaintext)
        views, has_more = await self._service.list_entries(
            request.account_id,
            limit=request.limit,
            starting_after=request.starting_after,
            created_after_us=_microseconds(request.created_after)
            if request.HasField("created_after")
            else None,
            created_before_us=_microseconds(request.created_before)
            if request.HasField("created_before")
            else None,
            descending=request.descending,
        )
        data = []
        for view in views:
            entry = ledger_pb2.Entry(
                id=str(view.seq),
                transfer_id=view.entry.transfer_id,
                account_id=view.entry.account_id,
                side=int(view.entry.side),  # type: ignore[arg-type]
                kind=int(view.entry.kind),  # type: ignore[arg-type]
                amount=view.entry.amount,
                currency=view.currency,
                balance_after=view.entry.balance_after,
                code=view.code,
                created_at=_timestamp(view.created_at_us),
            )
            entry.metadata.update(view.metadata)
            data.append(entry)
        return ledger_pb2.ListEntriesResponse(data=data, has_more=has_more)

    async def ExpirePendingTransfers(  # noqa: N802
        self, request: ledger_pb2.ExpirePendingTransfersRequest, context: object
    ) -> ledger_pb2.ExpirePendingTransfersResponse:
        _authorize(self._plaintext)
        expired = await self._service.expire_pending(request.limit)
        return ledger_pb2.ExpirePendingTransfersResponse(expired_transfer_ids=expired)

    async def CheckInvariants(  # noqa: N802
        self, request: ledger_pb2.CheckInvariantsRequest, context: object
    ) -> ledger_pb2.CheckInvariantsResponse:
        _authorize(self._plaintext)
        report = await self._service.check_invariants()
        return ledger_pb2.CheckInvariantsResponse(
            ok=not report.violations,
            checked=list(report.checked),
            violations=[
                ledger_pb2.InvariantViolation(invariant=v.invariant, account_id=v.account_id, detail=v.detail)
                for v in report.violations
            ],
            accounts_checked=report.accounts_checked,
            transfers_checked=report.transfers_checked,
        )

    async def VerifyChain(  # noqa: N802
        self, request: ledger_pb2.VerifyChainRequest, context: object
    ) -> ledger_pb2.VerifyChainResponse:
        _authorize(self._plaintext)
        report = await self._service.verify_chain()
        return ledger_pb2.VerifyChainResponse(
            ok=report.ok,
            batches_checked=report.batches_checked,
            first_broken_batch_id=report.first_broken_batch_id,
            detail=report.detail,
        )
