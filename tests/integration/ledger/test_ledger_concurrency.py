"""Many clients, two replicas, a handful of hot no-overdraft accounts: nothing lost, nothing created.

Two ledger servers share one database (as replicas behind a load balancer would); eight clients
hammer five hot accounts with single transfers, pending holds with posts and voids, and batches.
No deadlock or serialization error may reach a caller, no flagged account may be overdrawn,
the invariants and the hash chain must hold, and replaying every request with the same ids must
change nothing.
"""

from __future__ import annotations

import asyncio
import functools
import pathlib
import random
from collections.abc import AsyncIterator

import pytest
from clearhouse.ledger.v1 import ledger_pb2 as pb
from clearhouse.ledger.v1 import ledger_pb2_grpc

from chassis.channels import open_channel
from chassis.service import RunningService, start
from ledger_svc.bootstrap import build
from tests.integration.ledger.conftest import FakeClock, ledger_settings
from tests.integration.ledger.helpers import A, F, R, T, account, assert_clean, ref

CLIENTS = 8
ITERATIONS_PER_CLIENT = 120
HOT_ACCOUNTS = 5
FUNDING = 2_000
BATCH_SIZE = 10


@pytest.fixture
async def replicas(
    var_dir: pathlib.Path, database_url: str
) -> AsyncIterator[list[ledger_pb2_grpc.LedgerStub]]:
    clock = FakeClock()
    settings = ledger_settings(var_dir, database_url)
    servers: list[RunningService] = []
    channels = []
    try:
        for _ in range(2):
            servers.append(await start(settings, functools.partial(build, clock=clock), port=0))
        channels = [open_channel(server.address, settings, "payments") for server in servers]
        yield [ledger_pb2_grpc.LedgerStub(channel) for channel in channels]
    finally:
        for channel in channels:
            await channel.close()
        for server in servers:
            await server.stop(0)


async def test_concurrent_clients_on_hot_accounts(replicas: list[ledger_pb2_grpc.LedgerStub]) -> None:
    stub = replicas[0]
    source = ref("source")
    hot = [ref(f"hot{i}") for i in range(HOT_ACCOUNTS)]
    created = await stub.CreateAccounts(
        pb.CreateAccountsRequest(
            accounts=[account(source, A.ASSET)] + [account(h, no_overdraft=True) for h in hot]
        )
    )
    assert all(r.result == pb.CreateAccountResult.OK for r in created.results)
    funding = await stub.CreateTransfers(
        pb.CreateTransfersRequest(
            transfers=[T(id=ref(), debit_account_id=source, credit_account_id=h, amount=FUNDING) for h in hot]
        )
    )
    assert all(r.result == R.OK for r in funding.results)

    sent: list[tuple[pb.CreateTransfersRequest, list[int]]] = []

    async def client(number: int) -> None:
        rng = random.Random(number)
        client_stub = replicas[number % len(replicas)]
        holds: list[str] = []
        for _ in range(ITERATIONS_PER_CLIENT):
            choice = rng.random()
            debit, credit = rng.sample(hot, 2)
            if choice < 0.45:
                transfers = [
                    T(id=ref(), debit_account_id=debit, credit_account_id=credit, amount=rng.randint(1, 400))
                ]
            elif choice < 0.65:
                hold = T(
                    id=ref(),
                    debit_account_id=debit,
                    credit_account_id=credit,
                    amount=rng.randint(1, 300),
                    flags=F(pending=True),
                )
                transfers = [hold]
            elif choice < 0.8 and holds:
                pending_id = holds.pop(rng.randrange(len(holds)))
                if rng.random() < 0.7:
                    transfers = [
                        T(
                            id=ref(),
                            pending_id=pending_id,
                            amount=rng.randint(0, 300),
                            flags=F(post_pending_transfer=True),
                        )
                    ]
                else:
                    transfers = [T(id=ref(), pending_id=pending_id, flags=F(void_pending_transfer=True))]
            else:
                transfers = []
                for _ in range(BATCH_SIZE):
                    debit, credit = rng.sample(hot, 2)
                    transfers.append(
                        T(
                            id=ref(),
                            debit_account_id=debit,
                            credit_account_id=credit,
                            amount=rng.randint(1, 200),
                        )
                    )
            request = pb.CreateTransfersRequest(transfers=transfers)
            response = await client_stub.CreateTransfers(request, timeout=60)
            results = [r.result for r in response.results]
            sent.append((request, results))
            if transfers[0].flags.pending and results[0] == R.OK:
                holds.append(transfers[0].id)

    await asyncio.gather(*(client(n) for n in range(CLIENTS)))
    transfer_count = sum(len(request.transfers) for request, _ in sent)
    assert transfer_count >= 2_000
    accepted = sum(result == R.OK for _, results in sent for result in results)
    refused = sum(result == R.EXCEEDS_CREDITS for _, results in sent for result in results)
    assert accepted > transfer_count // 3 and refused > 0, (accepted, refused)

    before = await stub.GetBalances(pb.GetBalancesRequest(account_ids=hot))
    for balance in before.balances:
        assert balance.debits_posted + balance.debits_pending <= balance.credits_posted, balance
        assert balance.balance >= 0
    # Money only moved between the hot accounts: their total is what was funded.
    assert sum(b.balance for b in before.balances) == FUNDING * HOT_ACCOUNTS
    await assert_clean(stub)

    # Replaying every request, again concurrently and through both replicas, changes nothing.
    async def replay(number: int) -> None:
        for index in range(number, len(sent), CLIENTS):
            request, first_results = sent[index]
            response = await replicas[index % len(replicas)].CreateTransfers(request, timeout=60)
            for first, again in zip(first_results, (r.result for r in response.results), strict=True):
                assert again == (R.EXISTS if first in (R.OK, R.EXISTS) else R.ID_ALREADY_FAILED), (
                    first,
                    again,
                )

    await asyncio.gather(*(replay(n) for n in range(CLIENTS)))
    after = await stub.GetBalances(pb.GetBalancesRequest(account_ids=hot))
    assert list(after.balances) == list(before.balances)
    await assert_clean(stub)
