"""A day of money: payments, a refund, settlement, reconciliation (clean, then with injected
mismatches), and payouts (paid, failed with the funds returned, never more than available).
"""

from __future__ import annotations

import asyncio
import datetime

import grpc
import pytest
from clearhouse.payments.v1 import events_pb2, payouts_pb2, reconciliation_pb2, refunds_pb2, settlements_pb2
from clearhouse.provider.v1 import provider_pb2

from chassis import errors
from tests.integration.payments2.conftest import Env

pytestmark = pytest.mark.asyncio(loop_scope="module")
S = settlements_pb2
RC = reconciliation_pb2
PO = payouts_pb2
ITEM = RC.ReconciliationItem
SEEDS_TRIED_MAX = 50


def today() -> str:
    return datetime.datetime.now(datetime.UTC).date().isoformat()


async def test_settlement_then_reconciliation_matches_and_reports_injected_mismatches(env: Env) -> None:
    stack = env.stack
    merchant_id, keys = await env.merchant_with_keys("alice")
    owner = keys["owner"]
    amounts = [1_000, 2_000, 3_000, 4_000, 5_000, 6_000]
    intents = [await env.captured(owner, amount=a) for a in amounts]
    assert {i.provider for i in intents} == {"provider_a"}
    refund = (
        await env.refunds.CreateRefund(
            refunds_pb2.CreateRefundRequest(payment_intent=intents[0].id, amount=400),
            metadata=stack.md(owner),
        )
    ).refund
    await env.refunds.ApproveRefund(
        refunds_pb2.ApproveRefundRequest(id=refund.id), metadata=stack.md(keys["alice"])
    )
    fees = [290 * a // 10_000 + 30 for a in amounts]
    before = await env.balance(owner)
    assert before == {"pending": sum(amounts) - sum(fees), "available": -400, "reserved": 0}

    # Settlement: admin only; one batch for this merchant, provider and currency.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await env.settlements.RunSettlement(S.RunSettlementRequest(as_of=today()), metadata=stack.md(owner))
    assert errors.from_rpc_error(refused.value).reason == "PLATFORM_ADMIN_REQUIRED"
    run = await env.settlements.RunSettlement(
        S.RunSettlementRequest(as_of=today(), merchant_id=merchant_id), metadata=stack.admin_md()
    )
    assert len(run.settlements) == 1
    settlement = run.settlements[0]
    assert (settlement.provider, settlement.currency, settlement.payment_count) == ("provider_a", "USD", 6)
    assert (settlement.gross_amount, settlement.fee_amount) == (sum(amounts), sum(fees))
    assert settlement.net_amount == sum(amounts) - sum(fees)
    assert sorted(line.payment_intent for line in settlement.lines) == sorted(i.id for i in intents)
    assert await env.balance(owner) == {
        "pending": 0,
        "available": sum(amounts) - sum(fees) - 400,
        "reserved": 0,
    }
    for intent in intents:
        assert (await env.intent(owner, intent.id)).status == intent.SETTLED
    again = await env.settlements.RunSettlement(
        S.RunSettlementRequest(as_of=today(), merchant_id=merchant_id), metadata=stack.admin_md()
    )
    assert list(again.settlements) == []
    fetched = await env.settlements.GetSettlement(
        S.GetSettlementRequest(id=settlement.id), metadata=stack.md(owner)
    )
    assert len(fetched.settlement.lines) == 6

    # Reconciliation without injection: every capture and the refund match.
    clean = (
        await env.reconciliations.CreateReconciliation(
            RC.CreateReconciliationRequest(provider="provider_a", date=today()), metadata=stack.md(owner)
        )
    ).reconciliation
    assert (clean.item_count, clean.matched_count, clean.mismatch_count) == (7, 7, 0)
    assert {i.result for i in clean.items} == {ITEM.MATCHED}
    assert clean.report_total == clean.ledger_total == sum(amounts) - 400
    assert {i.type for i in clean.items} == {"capture", "refund"}

    # With mismatches injected in the simulator, exactly those are reported.
    mine = {i.id for i in intents} | {refund.id}
    try:
        for seed in range(1, SEEDS_TRIED_MAX):
            await stack.provider_stub.ConfigureFailures(
                provider_pb2.ConfigureFailuresRequest(
                    provider="provider_a",
                    config=provider_pb2.FailureConfig(settlement_mismatch_rate=0.5, seed=seed),
                )
            )
            report = await stack.provider_stub.GenerateSettlementReport(
                provider_pb2.GenerateSettlementReportRequest(provider="provider_a", date=today())
            )
            extra_rows = {r.merchant_reference for r in report.rows if r.merchant_id == merchant_id} - mine
            expected = {
                (m.merchant_reference, m.kind)
                for m in report.injected_mismatches
                if m.merchant_reference in mine or m.merchant_reference in extra_rows
            }
            if len({kind for _, kind in expected}) >= 2:
                break
        else:
            raise AssertionError("no seed injected mismatches into this merchant's rows")
        found = (
            await env.reconciliations.CreateReconciliation(
                RC.CreateReconciliationRequest(provider="provider_a", date=today()), metadata=stack.md(owner)
            )
        ).reconciliation
    finally:
        await stack.provider_stub.ConfigureFailures(
            provider_pb2.ConfigureFailuresRequest(provider="provider_a", config=provider_pb2.FailureConfig())
        )
    kinds = {
        ITEM.AMOUNT_MISMATCH: "amount_changed",
        ITEM.MISSING_FROM_REPORT: "row_missing",
        ITEM.MISSING_FROM_LEDGER: "extra_row",
    }
    reported = {(i.reference, kinds[i.result]) for i in found.items if i.result != ITEM.MATCHED}
    assert reported == expected
    assert found.mismatch_count == len(expected)
    assert found.matched_count == len(mine) - len([e for e in expected if e[1] != "extra_row"])
    stored = await env.reconciliations.GetReconciliation(
        RC.GetReconciliationRequest(id=found.id), metadata=stack.md(owner)
    )
    assert stored.reconciliation == found
    events = await stack.events.ListEvents(
        events_pb2.ListEventsRequest(type="reconciliation.mismatches_found", object_id=found.id),
        metadata=stack.md(owner),
    )
    assert len(events.data) == 1


async def test_payouts_paid_failed_and_never_more_than_available(env: Env) -> None:
    stack = env.stack
    merchant_id, keys = await env.merchant_with_keys("alice")
    owner = keys["owner"]
    for amount in (10_000, 10_000):
        await env.captured(owner, amount=amount)
    await env.settlements.RunSettlement(
        S.RunSettlementRequest(as_of=today(), merchant_id=merchant_id), metadata=stack.admin_md()
    )
    available = (await env.balance(owner))["available"]
    assert available == 2 * (10_000 - 320)

    with pytest.raises(grpc.aio.AioRpcError) as too_much:
        await env.payouts.CreatePayout(
            PO.CreatePayoutRequest(amount=available + 1, currency="USD"), metadata=stack.md(owner)
        )
    assert errors.from_rpc_error(too_much.value).reason == "INSUFFICIENT_AVAILABLE_BALANCE"

    failed = (
        await env.payouts.CreatePayout(
            PO.CreatePayoutRequest(amount=5_000, currency="USD", bank_account="000111111116"),
            metadata=stack.md(owner),
        )
    ).payout
    assert (failed.status, failed.failure_code) == (PO.Payout.FAILED, "no_account")
    assert (await env.balance(owner))["available"] == available  # funds returned

    paid = (
        await env.payouts.CreatePayout(
            PO.CreatePayoutRequest(amount=5_000, currency="USD"), metadata=stack.md(owner)
        )
    ).payout
    assert (paid.status, paid.bank_account) == (PO.Payout.PAID, "000123456789")
    available -= 5_000
    assert (await env.balance(owner))["available"] == available

    # Five concurrent payouts of 40 % of what is left: at most two fit.
    share = available * 4 // 10

    async def payout() -> int:
        try:
            response = await env.payouts.CreatePayout(
                PO.CreatePayoutRequest(amount=share, currency="USD"), metadata=stack.md(owner)
            )
        except grpc.aio.AioRpcError as error:
            assert errors.from_rpc_error(error).reason in {
                "INSUFFICIENT_AVAILABLE_BALANCE",
                "PAYMENT_INTENT_BUSY",
            }
            return 0
        assert response.payout.status == PO.Payout.PAID
        return response.payout.amount

    outcomes = await asyncio.gather(*(payout() for _ in range(5)))
    assert sum(outcomes) == 2 * share
    assert (await env.balance(owner))["available"] == available - 2 * share >= 0
    listed = await env.payouts.ListPayouts(
        PO.ListPayoutsRequest(status=PO.Payout.PAID), metadata=stack.md(owner)
    )
    assert len(listed.data) == 3
    assert (await stack.check_ledger()).ok
