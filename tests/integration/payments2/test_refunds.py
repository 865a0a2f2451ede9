"""Refunds under maker-checker, against the real ledger and provider simulator."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from clearhouse.ledger.v1 import ledger_pb2
from clearhouse.payments.v1 import merchants_pb2, payment_intents_pb2, refunds_pb2
from clearhouse.provider.v1 import provider_pb2

from chassis import errors
from tests.integration.payments2.conftest import Env, eventually, key

pytestmark = pytest.mark.asyncio(loop_scope="module")
R = refunds_pb2
PI = payment_intents_pb2.PaymentIntent


async def reason_of(call: object) -> tuple[grpc.StatusCode, str]:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as error:
        found = errors.from_rpc_error(error)
        return found.code, found.reason
    raise AssertionError("the call succeeded")


async def test_maker_checker_refund_lifecycle(env: Env) -> None:
    stack = env.stack
    _, keys = await env.merchant_with_keys("alice", "bob")
    intent = await env.captured(keys["owner"], amount=10_000)
    before = await env.balance(keys["owner"])

    created = (
        await env.refunds.CreateRefund(
            R.CreateRefundRequest(
                payment_intent=intent.id, amount=3_000, reason=R.Refund.REQUESTED_BY_CUSTOMER
            ),
            metadata=stack.md(keys["alice"]),
        )
    ).refund
    assert created.status == R.Refund.PENDING_APPROVAL
    assert created.requested_by == "alice"
    # No provider call before approval.
    found = await stack.provider_stub.GetTransaction(
        provider_pb2.GetTransactionRequest(provider=intent.provider, transaction_id=intent.provider_reference)
    )
    assert found.transaction.amount_refunded == 0

    # The requester cannot approve, whichever of their keys they use; a header claiming another
    # identity changes nothing (identity comes from the API key only).
    code, reason = await reason_of(
        env.refunds.ApproveRefund(
            R.ApproveRefundRequest(id=created.id),
            metadata=stack.md(keys["alice"], x_principal="bob", principal="bob"),
        )
    )
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "REFUND_SELF_APPROVAL_FORBIDDEN")

    approved = (
        await env.refunds.ApproveRefund(
            R.ApproveRefundRequest(id=created.id), metadata=stack.md(keys["bob"], key())
        )
    ).refund
    assert approved.status == R.Refund.SUCCEEDED
    assert approved.reviewed_by == "bob"
    assert approved.provider_reference.startswith("prf_")

    after = await env.balance(keys["owner"])
    assert after["available"] == before["available"] - 3_000
    assert after["pending"] == before["pending"]
    refreshed = await env.intent(keys["owner"], intent.id)
    assert refreshed.amount_refunded == 3_000
    assert refreshed.status == PI.CAPTURED
    found = await stack.provider_stub.GetTransaction(
        provider_pb2.GetTransactionRequest(provider=intent.provider, transaction_id=intent.provider_reference)
    )
    assert found.transaction.amount_refunded == 3_000
    transfer = await stack.ledger_stub.LookupTransfers(
        ledger_pb2.LookupTransfersRequest(ids=[f"{created.id}:refund"])
    )
    assert [t.amount for t in transfer.transfers] == [3_000]

    # Approving twice is refused; the rest refunds fully → REFUNDED.
    code, reason = await reason_of(
        env.refunds.ApproveRefund(R.ApproveRefundRequest(id=created.id), metadata=stack.md(keys["owner"]))
    )
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "REFUND_NOT_PENDING_APPROVAL")
    rest = (
        await env.refunds.CreateRefund(
            R.CreateRefundRequest(payment_intent=intent.id), metadata=stack.md(keys["bob"])
        )
    ).refund
    assert rest.amount == 7_000
    done = (
        await env.refunds.ApproveRefund(R.ApproveRefundRequest(id=rest.id), metadata=stack.md(keys["alice"]))
    ).refund
    assert done.status == R.Refund.SUCCEEDED
    refreshed = await env.intent(keys["owner"], intent.id)
    assert (refreshed.status, refreshed.amount_refunded) == (PI.REFUNDED, 10_000)
    code, reason = await reason_of(
        env.refunds.CreateRefund(
            R.CreateRefundRequest(payment_intent=intent.id, amount=1), metadata=stack.md(keys["alice"])
        )
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    listed = await env.refunds.ListRefunds(
        R.ListRefundsRequest(payment_intent=intent.id), metadata=stack.md(keys["owner"])
    )
    assert [r.id for r in listed.data] == [rest.id, created.id]


async def test_viewer_cannot_request_and_rejection_records_reason(env: Env) -> None:
    stack = env.stack
    merchant_id, keys = await env.merchant_with_keys("alice")
    viewer = await stack.merchants.CreateApiKey(
        merchants_pb2.CreateApiKeyRequest(
            merchant_id=merchant_id, principal="victor", role=merchants_pb2.ApiKey.VIEWER
        ),
        metadata=stack.md(keys["owner"]),
    )
    intent = await env.captured(keys["owner"], amount=5_000)
    code, reason = await reason_of(
        env.refunds.CreateRefund(
            R.CreateRefundRequest(payment_intent=intent.id), metadata=stack.md(viewer.api_key.secret)
        )
    )
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED")
    # The platform admin is no principal of the merchant: it can neither request nor approve.
    code, _ = await reason_of(
        env.refunds.CreateRefund(R.CreateRefundRequest(payment_intent=intent.id), metadata=stack.admin_md())
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED

    before = await env.balance(keys["owner"])
    created = (
        await env.refunds.CreateRefund(
            R.CreateRefundRequest(payment_intent=intent.id, amount=500), metadata=stack.md(keys["alice"])
        )
    ).refund
    code, reason = await reason_of(
        env.refunds.RejectRefund(
            R.RejectRefundRequest(id=created.id, reason=""), metadata=stack.md(keys["owner"])
        )
    )
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REJECTION_REASON")
    rejected = (
        await env.refunds.RejectRefund(
            R.RejectRefundRequest(id=created.id, reason="not our order"), metadata=stack.md(keys["owner"])
        )
    ).refund
    assert (rejected.status, rejected.rejection_reason, rejected.reviewed_by) == (
        R.Refund.REJECTED,
        "not our order",
        "owner",
    )
    assert await env.balance(keys["owner"]) == before
    # Another merchant sees nothing.
    other = await stack.new_merchant()
    code, reason = await reason_of(
        env.refunds.GetRefund(R.GetRefundRequest(id=created.id), metadata=stack.md(other.secret))
    )
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "REFUND_NOT_FOUND")


async def test_provider_refusal_fails_the_refund_and_leaves_money(env: Env) -> None:
    stack = env.stack
    _, keys = await env.merchant_with_keys("alice")
    intent = await env.captured(keys["owner"], amount=4_000)
    created = (
        await env.refunds.CreateRefund(
            R.CreateRefundRequest(payment_intent=intent.id), metadata=stack.md(keys["alice"])
        )
    ).refund
    # The cardholder's bank charges back meanwhile: the provider refuses refunds from then on
    # (and its webhook opens a dispute here).
    await stack.provider_stub.TriggerChargeback(
        provider_pb2.TriggerChargebackRequest(
            provider=intent.provider, transaction_id=intent.provider_reference
        )
    )

    async def disputed() -> bool:
        return (await env.intent(keys["owner"], intent.id)).status == PI.DISPUTED

    await eventually(disputed, "the chargeback webhook")
    before = await env.balance(keys["owner"])
    failed = (
        await env.refunds.ApproveRefund(
            R.ApproveRefundRequest(id=created.id), metadata=stack.md(keys["owner"])
        )
    ).refund
    assert failed.status == R.Refund.FAILED
    assert failed.failure_code == "transaction_disputed"
    assert await env.balance(keys["owner"]) == before
    assert (await env.intent(keys["owner"], intent.id)).amount_refunded == 0


async def test_concurrent_requests_and_approvals_never_exceed_the_capture(env: Env) -> None:
    stack = env.stack
    _, keys = await env.merchant_with_keys("alice", "bob")
    captured = 10_000
    intent = await env.captured(keys["owner"], amount=captured)
    before = await env.balance(keys["owner"])

    async def request(amount: int) -> R.Refund | None:
        try:
            response = await env.refunds.CreateRefund(
                R.CreateRefundRequest(payment_intent=intent.id, amount=amount),
                metadata=stack.md(keys["alice"]),
            )
        except grpc.aio.AioRpcError as error:
            assert errors.from_rpc_error(error).reason in {
                "REFUND_EXCEEDS_CAPTURED",
                "PAYMENT_FULLY_REFUNDED",
            }
            return None
        return response.refund

    # Ten requests of 3,000 against 10,000 captured: at most three fit.
    requested = [r for r in await asyncio.gather(*(request(3_000) for _ in range(10))) if r is not None]
    assert len(requested) == 3

    async def approve(refund_id: str, secret: str) -> int:
        try:
            response = await env.refunds.ApproveRefund(
                R.ApproveRefundRequest(id=refund_id), metadata=stack.md(secret)
            )
        except grpc.aio.AioRpcError as error:
            assert errors.from_rpc_error(error).reason == "REFUND_NOT_PENDING_APPROVAL"
            return 0
        return response.refund.amount if response.refund.status == R.Refund.SUCCEEDED else 0

    # Every refund approved concurrently by two checkers at once: each succeeds exactly once.
    results = await asyncio.gather(
        *(approve(r.id, secret) for r in requested for secret in (keys["bob"], keys["owner"]))
    )
    assert sum(results) == 9_000
    refreshed = await env.intent(keys["owner"], intent.id)
    assert refreshed.amount_refunded == 9_000 <= captured
    after = await env.balance(keys["owner"])
    assert after["available"] == before["available"] - 9_000
    found = await stack.provider_stub.GetTransaction(
        provider_pb2.GetTransactionRequest(provider=intent.provider, transaction_id=intent.provider_reference)
    )
    assert found.transaction.amount_refunded == 9_000
    assert (await stack.check_ledger()).ok
