"""Small builders shared by the ledger tests."""

from __future__ import annotations

import secrets

from clearhouse.ledger.v1 import ledger_pb2 as pb
from clearhouse.ledger.v1 import ledger_pb2_grpc

A = pb.Account
T = pb.Transfer
F = pb.TransferFlags
R = pb.CreateTransferResult.Result


def ref(prefix: str = "t") -> str:
    """A random reference so tests never collide on ids."""
    return f"{prefix}-{secrets.token_hex(6)}"


def account(
    account_id: str,
    account_type: int = A.LIABILITY,
    currency: str = "USD",
    *,
    no_overdraft: bool = False,
    no_overcredit: bool = False,
) -> pb.Account:
    return A(
        id=account_id,
        currency=currency,
        type=account_type,  # type: ignore[arg-type]
        flags=pb.AccountFlags(
            debits_must_not_exceed_credits=no_overdraft, credits_must_not_exceed_debits=no_overcredit
        ),
    )


async def create_accounts(stub: ledger_pb2_grpc.LedgerStub, *accounts: pb.Account) -> list[str]:
    response = await stub.CreateAccounts(pb.CreateAccountsRequest(accounts=list(accounts)))
    return [pb.CreateAccountResult.Result.Name(r.result) for r in response.results]


async def transfer(stub: ledger_pb2_grpc.LedgerStub, *transfers: pb.Transfer) -> list[str]:
    response = await stub.CreateTransfers(pb.CreateTransfersRequest(transfers=list(transfers)))
    return [R.Name(r.result) for r in response.results]


async def balances(stub: ledger_pb2_grpc.LedgerStub, *account_ids: str) -> dict[str, pb.Balance]:
    response = await stub.GetBalances(pb.GetBalancesRequest(account_ids=list(account_ids)))
    return {b.account_id: b for b in response.balances}


async def assert_clean(stub: ledger_pb2_grpc.LedgerStub) -> None:
    invariants = await stub.CheckInvariants(pb.CheckInvariantsRequest())
    assert invariants.ok, list(invariants.violations)
    chain = await stub.VerifyChain(pb.VerifyChainRequest())
    assert chain.ok, chain.detail
