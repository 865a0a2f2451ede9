"""Every Ledger RPC against a real server, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import functools
import time

import grpc
import pytest
import sqlalchemy as sa
from clearhouse.ledger.v1 import ledger_pb2 as pb
from google.protobuf import timestamp_pb2

from chassis import errors
from chassis.service import start
from ledger_svc.bootstrap import build
from tests.integration.ledger.conftest import Ledger, ledger_settings
from tests.integration.ledger.helpers import (
    A,
    F,
    T,
    account,
    assert_clean,
    balances,
    create_accounts,
    ref,
    transfer,
)


async def funded(ledger: Ledger, amount: int = 1_000) -> tuple[str, str, str]:
    """A cash asset, a merchant liability (no overdraft) funded with `amount`, and a revenue account."""
    cash, merchant, revenue = ref("cash"), ref("merchant"), ref("revenue")
    assert await create_accounts(
        ledger.stub,
        account(cash, A.ASSET),
        account(merchant, A.LIABILITY, no_overdraft=True),
        account(revenue, A.REVENUE),
    ) == ["OK", "OK", "OK"]
    assert await transfer(
        ledger.stub, T(id=ref(), debit_account_id=cash, credit_account_id=merchant, amount=amount)
    ) == ["OK"]
    return cash, merchant, revenue


async def test_accounts_are_idempotent_and_validated(ledger: Ledger) -> None:
    first, second = ref("acct"), ref("acct")
    results = await create_accounts(
        ledger.stub,
        account(first),
        account(first),
        A(id="", currency="USD", type=A.ASSET),
        A(id=ref(), currency="XXQ", type=A.ASSET),
        A(id=ref(), currency="USD"),
        account(ref(), no_overdraft=True, no_overcredit=True),
    )
    assert results == [
        "OK",
        "DUPLICATE_ID_IN_BATCH",
        "INVALID_ID",
        "INVALID_CURRENCY",
        "INVALID_TYPE",
        "FLAGS_ARE_MUTUALLY_EXCLUSIVE",
    ]
    assert await create_accounts(ledger.stub, account(first)) == ["EXISTS"]
    assert await create_accounts(ledger.stub, account(first, currency="EUR")) == [
        "EXISTS_WITH_DIFFERENT_FIELDS"
    ]
    # A linked chain of accounts is all or nothing and names the one that broke it.
    linked = A(id=second, currency="USD", type=A.ASSET, flags=pb.AccountFlags(linked=True))
    assert await create_accounts(ledger.stub, linked, A(id=ref(), currency="USD")) == [
        "LINKED_EVENT_FAILED",
        "INVALID_TYPE",
    ]
    assert await create_accounts(ledger.stub, linked) == ["LINKED_EVENT_CHAIN_OPEN"]
    found = await ledger.stub.LookupAccounts(pb.LookupAccountsRequest(ids=[second, first, "missing"]))
    assert [a.id for a in found.accounts] == [first]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await ledger.stub.CreateAccounts(
            pb.CreateAccountsRequest(accounts=[A(id=ref(), currency="USD", type=A.ASSET, balance=5)])
        )
    assert errors.from_rpc_error(caught.value).reason == "OUTPUT_ONLY_FIELD_SET"


async def test_single_transfers_results_and_idempotency(ledger: Ledger) -> None:
    cash, merchant, revenue = await funded(ledger, 500)
    euro = ref("eur")
    assert await create_accounts(ledger.stub, account(euro, currency="EUR")) == ["OK"]
    fee = T(
        id=ref(), debit_account_id=merchant, credit_account_id=revenue, amount=30, code=7, metadata={"k": "v"}
    )
    assert await transfer(ledger.stub, fee) == ["OK"]
    assert await transfer(ledger.stub, fee) == ["EXISTS"]
    changed = T()
    changed.CopyFrom(fee)
    changed.amount = 31
    assert await transfer(ledger.stub, changed) == ["EXISTS_WITH_DIFFERENT_FIELDS"]
    too_much = T(id=ref(), debit_account_id=merchant, credit_account_id=revenue, amount=471)
    assert await transfer(ledger.stub, too_much) == ["EXCEEDS_CREDITS"]
    # A failed id stays failed, even when the retry would now succeed.
    too_much.amount = 1
    assert await transfer(ledger.stub, too_much) == ["ID_ALREADY_FAILED"]
    assert await transfer(
        ledger.stub,
        T(id=ref(), debit_account_id=merchant, credit_account_id=euro, amount=1),
        T(id=ref(), debit_account_id=cash, credit_account_id=merchant, amount=1, currency="EUR"),
        T(id=ref(), debit_account_id="nope", credit_account_id=merchant, amount=1),
        T(id=ref(), debit_account_id=cash, credit_account_id="nope", amount=1),
        T(id=ref(), debit_account_id=cash, credit_account_id=cash, amount=1),
        T(id=ref(), debit_account_id=cash, credit_account_id=merchant, amount=0),
        T(id=ref(), debit_account_id=cash, credit_account_id=merchant, amount=1, timeout_seconds=5),
        T(id=ref(), debit_account_id=cash, credit_account_id=merchant, amount=1, pending_id="x"),
        T(id=ref(), pending_id="", flags=F(post_pending_transfer=True)),
        T(
            id=ref(),
            debit_account_id=cash,
            credit_account_id=merchant,
            amount=1,
            flags=F(pending=True, void_pending_transfer=True),
        ),
        T(id="bad id", debit_account_id=cash, credit_account_id=merchant, amount=1),
        T(id=ref(), debit_account_id=cash, credit_account_id=merchant, amount=1, metadata={"k" * 41: "v"}),
    ) == [
        "CURRENCY_MISMATCH",
        "CURRENCY_MISMATCH",
        "DEBIT_ACCOUNT_NOT_FOUND",
        "CREDIT_ACCOUNT_NOT_FOUND",
        "ACCOUNTS_MUST_BE_DIFFERENT",
        "AMOUNT_MUST_BE_POSITIVE",
        "INVALID_TIMEOUT",
        "PENDING_ID_MUST_BE_EMPTY",
        "PENDING_ID_REQUIRED",
        "FLAGS_ARE_MUTUALLY_EXCLUSIVE",
        "INVALID_ID",
        "INVALID_METADATA",
    ]
    by_id = await balances(ledger.stub, cash, merchant, revenue)
    assert (by_id[cash].balance, by_id[merchant].balance, by_id[revenue].balance) == (500, 470, 30)
    looked = await ledger.stub.LookupTransfers(pb.LookupTransfersRequest(ids=[fee.id, too_much.id]))
    assert [(t.id, t.amount, t.code, dict(t.metadata), t.state) for t in looked.transfers] == [
        (fee.id, 30, 7, {"k": "v"}, T.POSTED)
    ]
    await assert_clean(ledger.stub)


async def test_linked_chain_is_all_or_nothing_and_names_the_breaker(ledger: Ledger) -> None:
    cash, merchant, revenue = await funded(ledger, 100)
    chain = [
        T(id=ref(), debit_account_id=merchant, credit_account_id=revenue, amount=60, flags=F(linked=True)),
        T(id=ref(), debit_account_id=merchant, credit_account_id=revenue, amount=60, flags=F(linked=True)),
        T(id=ref(), debit_account_id=cash, credit_account_id=revenue, amount=1),
        T(id=ref(), debit_account_id=cash, credit_account_id=revenue, amount=2),
    ]
    assert await transfer(ledger.stub, *chain) == [
        "LINKED_EVENT_FAILED",
        "EXCEEDS_CREDITS",
        "LINKED_EVENT_FAILED",
        "OK",
    ]
    by_id = await balances(ledger.stub, merchant, revenue)
    assert (by_id[merchant].balance, by_id[revenue].balance) == (100, 2)
    # Nothing of the failed chain was stored; the chain-breaking id is burnt, the others are not.
    looked = await ledger.stub.LookupTransfers(pb.LookupTransfersRequest(ids=[t.id for t in chain]))
    assert [t.id for t in looked.transfers] == [chain[3].id]
    chain[1].amount = 40
    assert await transfer(ledger.stub, chain[0], chain[1], chain[2]) == [
        "LINKED_EVENT_FAILED",
        "ID_ALREADY_FAILED",
        "LINKED_EVENT_FAILED",
    ]
    fresh = [
        T(id=ref(), debit_account_id=merchant, credit_account_id=revenue, amount=60, flags=F(linked=True)),
        T(id=ref(), debit_account_id=merchant, credit_account_id=revenue, amount=40),
    ]
    assert await transfer(ledger.stub, *fresh) == ["OK", "OK"]
    assert await transfer(ledger.stub, *fresh) == ["EXISTS", "EXISTS"]
    assert await transfer(
        ledger.stub,
        T(id=ref(), debit_account_id=cash, credit_account_id=revenue, amount=1, flags=F(linked=True)),
    ) == ["LINKED_EVENT_CHAIN_OPEN"]
    await assert_clean(ledger.stub)


async def test_two_phase_post_void_and_flags_count_pending(ledger: Ledger) -> None:
    cash, merchant, revenue = await funded(ledger, 100)
    hold = T(id=ref(), debit_account_id=merchant, credit_account_id=revenue, amount=80, flags=F(pending=True))
    assert await transfer(ledger.stub, hold) == ["OK"]
    # The reservation counts against the overdraft flag at once.
    assert await transfer(
        ledger.stub, T(id=ref(), debit_account_id=merchant, credit_account_id=revenue, amount=21)
    ) == ["EXCEEDS_CREDITS"]
    by_id = await balances(ledger.stub, merchant)
    assert (by_id[merchant].debits_pending, by_id[merchant].balance, by_id[merchant].pending_balance) == (
        80,
        100,
        -80,
    )
    post = T(id=ref(), pending_id=hold.id, amount=0, flags=F(post_pending_transfer=True))
    assert await transfer(
        ledger.stub,
        T(id=ref(), pending_id=hold.id, amount=81, flags=F(post_pending_transfer=True)),
        T(id=ref(), pending_id=hold.id, debit_account_id=cash, flags=F(post_pending_transfer=True)),
        T(id=ref(), pending_id="missing", flags=F(post_pending_transfer=True)),
        post,
        T(id=ref(), pending_id=hold.id, flags=F(void_pending_transfer=True)),
        T(id=ref(), pending_id=post.id, flags=F(void_pending_transfer=True)),
    ) == [
        "AMOUNT_EXCEEDS_PENDING_AMOUNT",
        "PENDING_TRANSFER_HAS_DIFFERENT_ACCOUNTS",
        "PENDING_TRANSFER_NOT_FOUND",
        "OK",
        "PENDING_TRANSFER_ALREADY_POSTED",
        "PENDING_TRANSFER_NOT_PENDING",
    ]
    assert await transfer(ledger.stub, post) == ["EXISTS"]
    looked = {
        t.id: t
        for t in (
            await ledger.stub.LookupTransfers(pb.LookupTransfersRequest(ids=[hold.id, post.id]))
        ).transfers
    }
    assert (looked[hold.id].state, looked[hold.id].amount_posted) == (T.PENDING_POSTED, 80)
    assert (looked[post.id].state, looked[post.id].amount, looked[post.id].debit_account_id) == (
        T.POSTED,
        80,
        merchant,
    )

    # Partial post: the rest is released.
    partial = T(id=ref(), debit_account_id=cash, credit_account_id=merchant, amount=50, flags=F(pending=True))
    voided = T(id=ref(), debit_account_id=cash, credit_account_id=merchant, amount=30, flags=F(pending=True))
    assert await transfer(ledger.stub, partial, voided) == ["OK", "OK"]
    assert await transfer(
        ledger.stub,
        T(id=ref(), pending_id=partial.id, amount=20, flags=F(post_pending_transfer=True)),
        T(id=ref(), pending_id=voided.id, flags=F(void_pending_transfer=True)),
        T(id=ref(), pending_id=voided.id, flags=F(post_pending_transfer=True)),
    ) == ["OK", "OK", "PENDING_TRANSFER_ALREADY_VOIDED"]
    by_id = await balances(ledger.stub, cash, merchant)
    assert (by_id[merchant].credits_posted, by_id[merchant].credits_pending, by_id[merchant].balance) == (
        120,
        0,
        40,
    )
    assert (by_id[cash].debits_pending, by_id[cash].balance) == (0, 120)
    await assert_clean(ledger.stub)


async def test_pending_transfers_expire_on_demand(ledger: Ledger) -> None:
    cash, merchant, _ = await funded(ledger, 10)
    hold = T(
        id=ref(),
        debit_account_id=cash,
        credit_account_id=merchant,
        amount=7,
        timeout_seconds=60,
        flags=F(pending=True),
    )
    assert await transfer(ledger.stub, hold) == ["OK"]
    expired = await ledger.stub.ExpirePendingTransfers(pb.ExpirePendingTransfersRequest())
    assert hold.id not in expired.expired_transfer_ids
    ledger.clock.advance(61)
    # Past its timeout the hold can no longer be posted, even before the release is written.
    assert await transfer(
        ledger.stub, T(id=ref(), pending_id=hold.id, flags=F(post_pending_transfer=True))
    ) == ["PENDING_TRANSFER_EXPIRED"]
    expired = await ledger.stub.ExpirePendingTransfers(pb.ExpirePendingTransfersRequest())
    assert hold.id in expired.expired_transfer_ids
    looked = (await ledger.stub.LookupTransfers(pb.LookupTransfersRequest(ids=[hold.id]))).transfers
    assert looked[0].state == T.PENDING_EXPIRED
    assert (await balances(ledger.stub, merchant))[merchant].credits_pending == 0
    assert await transfer(
        ledger.stub, T(id=ref(), pending_id=hold.id, flags=F(void_pending_transfer=True))
    ) == ["PENDING_TRANSFER_EXPIRED"]
    await assert_clean(ledger.stub)


async def test_the_expiry_worker_releases_by_itself(ledger: Ledger) -> None:
    # A second replica on the same database runs the worker (the fixture's one has it off).
    settings = ledger_settings(
        ledger.settings.var_dir, ledger.settings.resolved_database_url, expiry_interval_seconds=0.05
    )
    replica = await start(settings, functools.partial(build, clock=ledger.clock), port=0)
    try:
        cash, merchant, _ = await funded(ledger, 10)
        hold = T(
            id=ref(),
            debit_account_id=cash,
            credit_account_id=merchant,
            amount=5,
            timeout_seconds=1,
            flags=F(pending=True),
        )
        assert await transfer(ledger.stub, hold) == ["OK"]
        ledger.clock.advance(2)
        deadline = time.monotonic() + 10
        state = T.PENDING
        while time.monotonic() < deadline:
            looked = (await ledger.stub.LookupTransfers(pb.LookupTransfersRequest(ids=[hold.id]))).transfers
            state = looked[0].state
            if state == T.PENDING_EXPIRED:
                break
            await asyncio.sleep(0.02)
        assert state == T.PENDING_EXPIRED
    finally:
        await replica.stop(0)
    await assert_clean(ledger.stub)


async def test_entries_history_pages_filters_and_order(ledger: Ledger) -> None:
    _cash, merchant, revenue = await funded(ledger, 100)
    started = ledger.clock.now_us
    for amount in (1, 2, 3, 4, 5):
        ledger.clock.advance(1)
        assert await transfer(
            ledger.stub,
            T(id=ref(), debit_account_id=merchant, credit_account_id=revenue, amount=amount, code=amount),
        ) == ["OK"]
    first = await ledger.stub.ListEntries(pb.ListEntriesRequest(account_id=merchant, limit=4))
    assert first.has_more
    assert [e.balance_after for e in first.data] == [100, 99, 97, 94]
    assert [e.side for e in first.data] == [pb.Entry.CREDIT, pb.Entry.DEBIT, pb.Entry.DEBIT, pb.Entry.DEBIT]
    rest = await ledger.stub.ListEntries(
        pb.ListEntriesRequest(account_id=merchant, limit=4, starting_after=first.data[-1].id)
    )
    assert not rest.has_more
    assert [e.balance_after for e in rest.data] == [90, 85]
    assert [e.code for e in rest.data] == [4, 5]
    newest = await ledger.stub.ListEntries(
        pb.ListEntriesRequest(account_id=merchant, limit=2, descending=True)
    )
    assert [e.amount for e in newest.data] == [5, 4] and newest.has_more
    older = await ledger.stub.ListEntries(
        pb.ListEntriesRequest(
            account_id=merchant, limit=10, descending=True, starting_after=newest.data[-1].id
        )
    )
    assert [e.amount for e in older.data] == [3, 2, 1, 100]
    window = await ledger.stub.ListEntries(
        pb.ListEntriesRequest(
            account_id=merchant,
            created_after=timestamp_pb2.Timestamp(
                seconds=(started + 2_000_000) // 1_000_000, nanos=(started + 2_000_000) % 1_000_000 * 1000
            ),
            created_before=timestamp_pb2.Timestamp(
                seconds=(started + 4_000_000) // 1_000_000, nanos=(started + 4_000_000) % 1_000_000 * 1000
            ),
        )
    )
    assert [e.amount for e in window.data] == [2, 3]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await ledger.stub.ListEntries(pb.ListEntriesRequest(account_id="missing"))
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await ledger.stub.ListEntries(pb.ListEntriesRequest(account_id=merchant, limit=1001))
    assert errors.from_rpc_error(caught.value).reason == "INVALID_PAGE"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await ledger.stub.CreateTransfers(pb.CreateTransfersRequest(transfers=[T(id=ref())] * 1001))
    assert errors.from_rpc_error(caught.value).reason == "BATCH_TOO_LARGE"


async def test_tampering_is_detected(ledger: Ledger) -> None:
    cash, merchant, revenue = await funded(ledger, 100)
    for _ in range(3):
        assert await transfer(
            ledger.stub, T(id=ref(), debit_account_id=merchant, credit_account_id=revenue, amount=1)
        ) == ["OK"]
    await assert_clean(ledger.stub)
    engine = ledger.running.definition.extras["engine"]
    async with engine.begin() as connection:
        victim = (
            await connection.execute(
                sa.text("SELECT batch_seq FROM entries WHERE account_id = :a ORDER BY seq LIMIT 1 OFFSET 2"),
                {"a": merchant},
            )
        ).scalar_one()
        batch_id = (
            await connection.execute(sa.text("SELECT id FROM batches WHERE seq = :s"), {"s": victim})
        ).scalar_one()
        await connection.execute(
            sa.text("UPDATE entries SET amount = amount + 1 WHERE batch_seq = :s AND account_id = :a"),
            {"s": victim, "a": merchant},
        )
        await connection.execute(
            sa.text("UPDATE accounts SET credits_posted = credits_posted + 5 WHERE id = :a"), {"a": revenue}
        )
        await connection.execute(
            sa.text("UPDATE accounts SET debits_posted = credits_posted + 1 WHERE id = :a"), {"a": merchant}
        )
        await connection.execute(sa.text("UPDATE accounts SET debits_pending = 3 WHERE id = :a"), {"a": cash})
    chain = await ledger.stub.VerifyChain(pb.VerifyChainRequest())
    assert not chain.ok and chain.first_broken_batch_id == batch_id
    invariants = await ledger.stub.CheckInvariants(pb.CheckInvariantsRequest())
    found = {(v.invariant, v.account_id) for v in invariants.violations}
    assert ("balance_equals_entries", merchant) in found
    assert ("balance_equals_entries", revenue) in found
    assert ("flag_overdrawn", merchant) in found
    assert ("pending_equals_open_transfers", cash) in found
    assert {"debits_equal_credits_posted", "debits_equal_credits_pending"} <= {
        v.invariant for v in invariants.violations
    }
    assert not invariants.ok


async def test_transfer_results_are_counted_for_prometheus(ledger: Ledger) -> None:
    import prometheus_client

    def counted(result: str) -> float:
        value = prometheus_client.REGISTRY.get_sample_value(
            "clearhouse_ledger_transfers_total", {"result": result}
        )
        return value or 0.0

    ok_before, exceeds_before = counted("OK"), counted("EXCEEDS_CREDITS")
    cash, merchant, _ = await funded(ledger, amount=100)
    assert await transfer(
        ledger.stub, T(id=ref(), debit_account_id=merchant, credit_account_id=cash, amount=500)
    ) == ["EXCEEDS_CREDITS"]
    assert counted("OK") == ok_before + 1
    assert counted("EXCEEDS_CREDITS") == exceeds_before + 1
