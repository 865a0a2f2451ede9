"""Authentication, roles and tenant isolation of the payments API."""

from __future__ import annotations

import grpc
import pytest
from clearhouse.payments.v1 import admin_pb2, merchants_pb2, payment_intents_pb2

from chassis import errors
from tests.integration.payments.conftest import PI, card
from tests.support.stack import Stack

pytestmark = pytest.mark.asyncio(loop_scope="module")
P = payment_intents_pb2
M = merchants_pb2


def failure(caught: pytest.ExceptionInfo[grpc.aio.AioRpcError]) -> tuple[grpc.StatusCode, str | None]:
    remote = errors.from_rpc_error(caught.value)
    return remote.code, remote.reason


async def list_intents(stack: Stack, metadata: tuple[tuple[str, str], ...]) -> P.ListPaymentIntentsResponse:
    return await stack.intents.ListPaymentIntents(P.ListPaymentIntentsRequest(), metadata=metadata)


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ((), "API_KEY_MISSING"),
        ((("authorization", "Basic abc"),), "API_KEY_MISSING"),
        ((("authorization", "Bearer not-a-key"),), "API_KEY_MALFORMED"),
        ((("authorization", "Bearer sk_" + "x" * 43),), "API_KEY_INVALID"),
    ],
)
async def test_missing_malformed_or_unknown_key_is_unauthenticated(
    stack: Stack, metadata: tuple[tuple[str, str], ...], reason: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await list_intents(stack, metadata)
    assert failure(caught) == (grpc.StatusCode.UNAUTHENTICATED, reason)


async def test_revoked_key_stops_working_at_once(stack: Stack) -> None:
    merchant = await stack.new_merchant()
    created = await stack.merchants.CreateApiKey(
        M.CreateApiKeyRequest(merchant_id=merchant.id, principal="bob", role=M.ApiKey.OPERATOR),
        metadata=stack.md(merchant.secret),
    )
    bob = created.api_key
    assert bob.secret.startswith("sk_") and bob.secret_last4 == bob.secret[-4:]
    assert (await list_intents(stack, stack.md(bob.secret))).data == []
    listed = await stack.merchants.ListApiKeys(
        M.ListApiKeysRequest(merchant_id=merchant.id), metadata=stack.md(merchant.secret)
    )
    assert {k.principal for k in listed.data} == {"owner", "bob"} and all(not k.secret for k in listed.data)

    revoked = await stack.merchants.RevokeApiKey(
        M.RevokeApiKeyRequest(merchant_id=merchant.id, api_key_id=bob.id), metadata=stack.md(merchant.secret)
    )
    assert revoked.api_key.HasField("revoked_at") and not revoked.api_key.secret
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await list_intents(stack, stack.md(bob.secret))
    assert failure(caught) == (grpc.StatusCode.UNAUTHENTICATED, "API_KEY_REVOKED")
    assert (await list_intents(stack, stack.md(merchant.secret))).data == []


async def test_viewer_reads_but_cannot_mutate(stack: Stack) -> None:
    merchant = await stack.new_merchant()
    viewer = (
        await stack.merchants.CreateApiKey(
            M.CreateApiKeyRequest(merchant_id=merchant.id, principal="auditor", role=M.ApiKey.VIEWER),
            metadata=stack.md(merchant.secret),
        )
    ).api_key.secret
    intent = (
        await stack.intents.CreatePaymentIntent(
            P.CreatePaymentIntentRequest(amount=100, currency="USD", capture_method=PI.MANUAL),
            metadata=stack.md(merchant.secret),
        )
    ).payment_intent
    got = await stack.intents.GetPaymentIntent(
        P.GetPaymentIntentRequest(id=intent.id), metadata=stack.md(viewer)
    )
    assert got.payment_intent.id == intent.id
    mutations = [
        stack.intents.CreatePaymentIntent(
            P.CreatePaymentIntentRequest(amount=100, currency="USD"), metadata=stack.md(viewer)
        ),
        stack.intents.ConfirmPaymentIntent(
            P.ConfirmPaymentIntentRequest(id=intent.id, payment_method=card()), metadata=stack.md(viewer)
        ),
        stack.intents.CancelPaymentIntent(
            P.CancelPaymentIntentRequest(id=intent.id), metadata=stack.md(viewer)
        ),
        stack.merchants.CreateApiKey(
            M.CreateApiKeyRequest(merchant_id=merchant.id, principal="x", role=M.ApiKey.ADMIN),
            metadata=stack.md(viewer),
        ),
    ]
    for call in mutations:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert failure(caught) == (grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED")
    assert (
        await stack.intents.GetPaymentIntent(
            P.GetPaymentIntentRequest(id=intent.id), metadata=stack.md(viewer)
        )
    ).payment_intent.status == PI.CREATED


async def test_operator_transacts_but_cannot_manage_keys(stack: Stack) -> None:
    merchant = await stack.new_merchant()
    operator = (
        await stack.merchants.CreateApiKey(
            M.CreateApiKeyRequest(merchant_id=merchant.id, principal="ops", role=M.ApiKey.OPERATOR),
            metadata=stack.md(merchant.secret),
        )
    ).api_key.secret
    created = await stack.intents.CreatePaymentIntent(
        P.CreatePaymentIntentRequest(amount=100, currency="USD"), metadata=stack.md(operator)
    )
    assert created.payment_intent.status == PI.CREATED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stack.merchants.CreateApiKey(
            M.CreateApiKeyRequest(merchant_id=merchant.id, principal="x", role=M.ApiKey.VIEWER),
            metadata=stack.md(operator),
        )
    assert failure(caught) == (grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED")


async def test_merchant_a_cannot_see_merchant_b(stack: Stack) -> None:
    a = await stack.new_merchant()
    b = await stack.new_merchant()
    b_intent = (
        await stack.intents.CreatePaymentIntent(
            P.CreatePaymentIntentRequest(amount=100, currency="USD"), metadata=stack.md(b.secret)
        )
    ).payment_intent
    calls = [
        stack.intents.GetPaymentIntent(
            P.GetPaymentIntentRequest(id=b_intent.id), metadata=stack.md(a.secret)
        ),
        stack.intents.ConfirmPaymentIntent(
            P.ConfirmPaymentIntentRequest(id=b_intent.id, payment_method=card()), metadata=stack.md(a.secret)
        ),
        stack.intents.CancelPaymentIntent(
            P.CancelPaymentIntentRequest(id=b_intent.id), metadata=stack.md(a.secret)
        ),
        stack.merchants.GetMerchant(M.GetMerchantRequest(merchant_id=b.id), metadata=stack.md(a.secret)),
        stack.merchants.ListApiKeys(M.ListApiKeysRequest(merchant_id=b.id), metadata=stack.md(a.secret)),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert failure(caught)[0] is grpc.StatusCode.NOT_FOUND
    assert b_intent.id not in {i.id for i in (await list_intents(stack, stack.md(a.secret))).data}
    own = await stack.merchants.GetMerchant(
        M.GetMerchantRequest(merchant_id=a.id), metadata=stack.md(a.secret)
    )
    assert own.merchant.id == a.id
    b_still = await stack.intents.GetPaymentIntent(
        P.GetPaymentIntentRequest(id=b_intent.id), metadata=stack.md(b.secret)
    )
    assert b_still.payment_intent.status == PI.CREATED


async def test_platform_admin_manages_merchants_and_merchants_cannot(stack: Stack) -> None:
    merchant = await stack.new_merchant(
        pricing=M.Pricing(fee_basis_points=150, fee_fixed=10),
        risk_settings=M.RiskSettings(amount_threshold=5_000),
    )
    created = merchant.response
    assert created.api_key.role == M.ApiKey.ADMIN and created.api_key.principal == "owner"
    assert created.merchant.pricing.fee_basis_points == 150
    assert created.merchant.risk_settings.review_score == 50  # defaults fill what was not set
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stack.merchants.CreateMerchant(
            M.CreateMerchantRequest(name="Sneaky", country="US", default_currency="USD"),
            metadata=stack.md(merchant.secret),
        )
    assert failure(caught) == (grpc.StatusCode.PERMISSION_DENIED, "PLATFORM_ADMIN_REQUIRED")
    with pytest.raises(grpc.aio.AioRpcError) as board:
        await stack.admin.GetProviderHealth(
            admin_pb2.GetProviderHealthRequest(), metadata=stack.md(merchant.secret)
        )
    assert failure(board) == (grpc.StatusCode.PERMISSION_DENIED, "PLATFORM_ADMIN_REQUIRED")
    updated = await stack.merchants.UpdateMerchant(
        M.UpdateMerchantRequest(
            merchant_id=merchant.id, pricing=M.Pricing(fee_basis_points=200, fee_fixed=0)
        ),
        metadata=stack.admin_md(),
    )
    assert updated.merchant.pricing.fee_basis_points == 200
    assert updated.merchant.risk_settings.amount_threshold == 5_000
    fetched = await stack.merchants.GetMerchant(
        M.GetMerchantRequest(merchant_id=merchant.id), metadata=stack.admin_md()
    )
    assert fetched.merchant.pricing.fee_basis_points == 200
    with pytest.raises(grpc.aio.AioRpcError) as needs_merchant:
        await list_intents(stack, stack.admin_md())
    assert failure(needs_merchant) == (grpc.StatusCode.PERMISSION_DENIED, "MERCHANT_KEY_REQUIRED")
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await stack.merchants.CreateMerchant(
            M.CreateMerchantRequest(name="", country="USA", default_currency="USD"), metadata=stack.admin_md()
        )
    assert failure(bad) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_NAME")
