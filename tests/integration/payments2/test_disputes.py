"""Disputes from signed provider webhooks (through the real gateway) and for simulation."""

from __future__ import annotations

import json
import secrets
import time

import grpc
import httpx
import pytest
from clearhouse.payments.v1 import disputes_pb2, payment_intents_pb2, refunds_pb2
from clearhouse.provider.v1 import provider_pb2

from chassis import errors, signatures
from chassis import secrets as dev_secrets
from tests.integration.payments2.conftest import CHARGEBACK_CARD, Env, eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")
D = disputes_pb2
PI = payment_intents_pb2.PaymentIntent
DISPUTE_FEE = 1_500
AMOUNT = 10_000
FEE = 320  # 2.9 % + 30 of 10,000


async def dispute_of(env: Env, secret: str, intent_id: str) -> D.Dispute | None:
    found = await env.disputes.ListDisputes(
        D.ListDisputesRequest(payment_intent=intent_id), metadata=env.stack.md(secret)
    )
    return found.data[0] if found.data else None


async def status_is(env: Env, secret: str, dispute_id: str, status: int) -> D.Dispute | None:
    found = (
        await env.disputes.GetDispute(D.GetDisputeRequest(id=dispute_id), metadata=env.stack.md(secret))
    ).dispute
    return found if found.status == status else None


async def test_chargeback_webhook_lifecycle_won_then_lost(env: Env) -> None:
    stack = env.stack
    merchant = await stack.new_merchant()
    secret = merchant.secret
    intent = await env.captured(secret, amount=AMOUNT, number=CHARGEBACK_CARD)
    assert await env.balance(secret) == {"pending": AMOUNT - FEE, "available": 0, "reserved": 0}

    # The simulator opens the chargeback after the capture and sends chargeback.opened.
    async def opened() -> D.Dispute | None:
        return await dispute_of(env, secret, intent.id)

    dispute = await eventually(opened, "chargeback.opened")
    assert (dispute.status, dispute.amount, dispute.fee) == (D.Dispute.OPENED, AMOUNT, DISPUTE_FEE)
    assert dispute.reason == D.Dispute.FRAUDULENT
    assert dispute.provider_dispute_id.startswith("pdp_")
    refreshed = await env.intent(secret, intent.id)
    assert (refreshed.status, refreshed.amount_disputed) == (PI.DISPUTED, AMOUNT)
    assert await env.balance(secret) == {
        "pending": AMOUNT - FEE,
        "available": -AMOUNT - DISPUTE_FEE,
        "reserved": AMOUNT,
    }

    evidence = D.DisputeEvidence(explanation="Delivered and signed for.", shipping_tracking_number="1Z999")
    reviewed = (
        await env.disputes.SubmitDisputeEvidence(
            D.SubmitDisputeEvidenceRequest(id=dispute.id, evidence=evidence), metadata=stack.md(secret)
        )
    ).dispute
    assert reviewed.status == D.Dispute.UNDER_REVIEW
    assert reviewed.evidence.shipping_tracking_number == "1Z999"
    # Only the platform admin (or the provider) decides.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await env.disputes.ResolveDispute(
            D.ResolveDisputeRequest(id=dispute.id, outcome=D.ResolveDisputeRequest.WON),
            metadata=stack.md(secret),
        )
    assert errors.from_rpc_error(refused.value).reason == "PLATFORM_ADMIN_REQUIRED"

    await stack.provider_stub.ResolveChargeback(
        provider_pb2.ResolveChargebackRequest(
            provider=intent.provider,
            dispute_id=dispute.provider_dispute_id,
            outcome=provider_pb2.ResolveChargebackRequest.WON,
        )
    )
    won = await eventually(lambda: status_is(env, secret, dispute.id, D.Dispute.WON), "chargeback.won")
    assert won.HasField("resolved_at")
    assert (await env.intent(secret, intent.id)).status == PI.CAPTURED
    # The amount is reinstated; the fee stays charged.
    assert await env.balance(secret) == {"pending": AMOUNT - FEE, "available": -DISPUTE_FEE, "reserved": 0}

    # A second chargeback on another payment, lost this time.
    second = await env.captured(secret, amount=AMOUNT, number=CHARGEBACK_CARD)
    lost_dispute = await eventually(lambda: dispute_of(env, secret, second.id), "second chargeback")
    await stack.provider_stub.ResolveChargeback(
        provider_pb2.ResolveChargebackRequest(
            provider=second.provider,
            dispute_id=lost_dispute.provider_dispute_id,
            outcome=provider_pb2.ResolveChargebackRequest.LOST,
        )
    )
    await eventually(lambda: status_is(env, secret, lost_dispute.id, D.Dispute.LOST), "chargeback.lost")
    assert (await env.intent(secret, second.id)).status == PI.DISPUTED
    assert await env.balance(secret) == {
        "pending": 2 * (AMOUNT - FEE),
        "available": -DISPUTE_FEE - AMOUNT - DISPUTE_FEE,
        "reserved": 0,
    }
    assert (await stack.check_ledger()).ok


def signed_event(
    env: Env, provider: str, event: dict[str, object], timestamp: int | None = None
) -> tuple[bytes, str]:
    secret = dev_secrets.load_or_create(env.stack.var_dir / "secrets" / f"{provider}_webhook.key")
    body = json.dumps(event).encode()
    return body, signatures.sign(secret, body, timestamp)


async def test_bad_signature_and_stale_timestamp_change_nothing_and_duplicates_apply_once(env: Env) -> None:
    stack = env.stack
    merchant = await stack.new_merchant()
    intent = await env.captured(merchant.secret, amount=AMOUNT)
    before = await env.balance(merchant.secret)
    event = {
        "id": f"pevt_test_{secrets.token_hex(8)}",
        "type": "chargeback.opened",
        "created": int(time.time()),
        "provider": intent.provider,
        "data": {
            "transaction_id": intent.provider_reference,
            "reference": intent.id,
            "merchant_id": merchant.id,
            "dispute_id": f"pdp_test_{secrets.token_hex(8)}",
            "amount": 2_500,
            "currency": "USD",
            "reason": "product_not_received",
        },
    }
    url = f"{env.gateway_url}/v1/provider_webhooks/{intent.provider}"
    body, good = signed_event(env, intent.provider, event)
    _, stale = signed_event(env, intent.provider, event, timestamp=int(time.time()) - 301)
    tampered = body.replace(b"2500", b"9999")
    async with httpx.AsyncClient(timeout=20) as http:
        for content, header, reason in (
            (body, "t=1,v1=" + "0" * 64, "SIGNATURE_TIMESTAMP_STALE"),
            (body, good.replace("v1=", "v1=00"), "SIGNATURE_MISMATCH"),
            (tampered, good, "SIGNATURE_MISMATCH"),
            (body, stale, "SIGNATURE_TIMESTAMP_STALE"),
            (body, None, "SIGNATURE_MISSING"),
        ):
            headers = {"content-type": "application/json"}
            if header is not None:
                headers["provider-signature"] = header
            response = await http.post(url, content=content, headers=headers)
            assert response.status_code == 401, response.text
            assert response.json()["details"][0]["reason"] == reason
        assert await dispute_of(env, merchant.secret, intent.id) is None
        assert await env.balance(merchant.secret) == before

        first = await http.post(
            url, content=body, headers={"content-type": "application/json", "provider-signature": good}
        )
        assert first.status_code == 200, first.text
        assert first.json()["duplicate"] is False
        assert first.json()["result"].startswith("dispute_opened dp_")
        again = await http.post(
            url, content=body, headers={"content-type": "application/json", "provider-signature": good}
        )
        assert again.status_code == 200, again.text
        assert again.json() == {**first.json(), "duplicate": True}
    listed = await env.disputes.ListDisputes(
        D.ListDisputesRequest(payment_intent=intent.id), metadata=stack.md(merchant.secret)
    )
    assert len(listed.data) == 1
    assert (listed.data[0].amount, listed.data[0].reason) == (2_500, D.Dispute.PRODUCT_NOT_RECEIVED)
    after = await env.balance(merchant.secret)
    assert after["available"] == before["available"] - 2_500 - DISPUTE_FEE
    assert after["reserved"] == before["reserved"] + 2_500


async def test_simulated_dispute_resolved_by_admin_and_refunded_payment_not_disputable(env: Env) -> None:
    stack = env.stack
    _, keys = await env.merchant_with_keys("alice")
    owner = keys["owner"]
    intent = await env.captured(owner, amount=AMOUNT)
    dispute = (
        await env.disputes.CreateDispute(
            D.CreateDisputeRequest(payment_intent=intent.id, reason=D.Dispute.DUPLICATE),
            metadata=stack.md(owner),
        )
    ).dispute
    assert (dispute.status, dispute.amount) == (D.Dispute.OPENED, AMOUNT)
    with pytest.raises(grpc.aio.AioRpcError) as twice:
        await env.disputes.CreateDispute(
            D.CreateDisputeRequest(payment_intent=intent.id), metadata=stack.md(owner)
        )
    assert errors.from_rpc_error(twice.value).reason == "PAYMENT_NOT_DISPUTABLE"
    lost = (
        await env.disputes.ResolveDispute(
            D.ResolveDisputeRequest(id=dispute.id, outcome=D.ResolveDisputeRequest.LOST),
            metadata=stack.admin_md(),
        )
    ).dispute
    assert lost.status == D.Dispute.LOST
    with pytest.raises(grpc.aio.AioRpcError) as closed:
        await env.disputes.ResolveDispute(
            D.ResolveDisputeRequest(id=dispute.id, outcome=D.ResolveDisputeRequest.WON),
            metadata=stack.admin_md(),
        )
    assert errors.from_rpc_error(closed.value).reason == "DISPUTE_CLOSED"

    refunded = await env.captured(owner, amount=3_000)
    request = (
        await env.refunds.CreateRefund(
            refunds_pb2.CreateRefundRequest(payment_intent=refunded.id), metadata=stack.md(owner)
        )
    ).refund
    await env.refunds.ApproveRefund(
        refunds_pb2.ApproveRefundRequest(id=request.id), metadata=stack.md(keys["alice"])
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await env.disputes.CreateDispute(
            D.CreateDisputeRequest(payment_intent=refunded.id), metadata=stack.md(owner)
        )
    assert errors.from_rpc_error(refused.value).reason == "PAYMENT_FULLY_REFUNDED"
