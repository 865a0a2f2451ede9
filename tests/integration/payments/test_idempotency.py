"""Idempotency keys (DESIGN.md §3) and concurrency on one payment intent."""

from __future__ import annotations

import asyncio
import datetime

import grpc
import pytest
import sqlalchemy as sa
from clearhouse.ledger.v1 import ledger_pb2
from clearhouse.payments.v1 import payment_intents_pb2
from clearhouse.provider.v1 import provider_pb2

from chassis import errors
from payments_svc.adapters.orm import idempotency_keys
from tests.integration.payments.conftest import PI, card, key
from tests.support.stack import Stack

pytestmark = pytest.mark.asyncio(loop_scope="module")
P = payment_intents_pb2
CONCURRENT_CONFIRMS = 20
CONCURRENT_CAPTURES = 50


async def provider_authorizations(stack: Stack) -> int:
    state = await stack.provider_stub.GetState(provider_pb2.GetStateRequest())
    return sum(p.counters.authorizations for p in state.providers)


async def create(
    stack: Stack, secret: str, amount: int = 1_000, **fields: object
) -> payment_intents_pb2.PaymentIntent:
    return (
        await stack.intents.CreatePaymentIntent(
            P.CreatePaymentIntentRequest(amount=amount, currency="USD", **fields),  # type: ignore[arg-type]
            metadata=stack.md(secret),
        )
    ).payment_intent


async def call_with_marker(call: grpc.aio.UnaryUnaryCall) -> tuple[object, bool]:  # type: ignore[type-arg]
    response = await call
    initial = await call.initial_metadata()
    return response, dict(initial or ()).get("idempotent-replayed") == "true"


async def test_twenty_concurrent_confirms_with_one_key_charge_once(stack: Stack) -> None:
    merchant = await stack.new_merchant()
    intent = await create(stack, merchant.secret, 3_300)
    idem = key()
    before = await provider_authorizations(stack)

    async def attempt() -> tuple[str, bool, int]:
        call = stack.intents.ConfirmPaymentIntent(
            P.ConfirmPaymentIntentRequest(id=intent.id, payment_method=card()),
            metadata=stack.md(merchant.secret, idem),
        )
        try:
            response, replayed = await call_with_marker(call)
        except grpc.aio.AioRpcError as error:
            remote = errors.from_rpc_error(error)
            assert (remote.code, remote.reason) == (grpc.StatusCode.ABORTED, "IDEMPOTENCY_KEY_IN_USE")
            return "in_use", False, 0
        return "ok", replayed, response.payment_intent.status  # type: ignore[attr-defined]

    results = await asyncio.gather(*(attempt() for _ in range(CONCURRENT_CONFIRMS)))
    fresh = [r for r in results if r[0] == "ok" and not r[1]]
    replays = [r for r in results if r[0] == "ok" and r[1]]
    in_use = [r for r in results if r[0] == "in_use"]
    assert len(fresh) == 1, results
    assert len(replays) + len(in_use) == CONCURRENT_CONFIRMS - 1
    assert all(r[2] == PI.CAPTURED for r in fresh + replays)
    assert await provider_authorizations(stack) - before == 1
    transfers = await stack.ledger_stub.LookupTransfers(
        ledger_pb2.LookupTransfersRequest(ids=[f"{intent.id}:auth", f"{intent.id}:capture"])
    )
    assert len(transfers.transfers) == 2
    with pytest.raises(grpc.aio.AioRpcError) as no_second_attempt:
        await stack.provider_stub.GetTransaction(
            provider_pb2.GetTransactionRequest(provider="provider_a", reference=f"{intent.id}:2")
        )
    assert no_second_attempt.value.code() is grpc.StatusCode.NOT_FOUND

    # After the dust settles, a retry is a replay with the identical response.
    response, replayed = await call_with_marker(
        stack.intents.ConfirmPaymentIntent(
            P.ConfirmPaymentIntentRequest(id=intent.id, payment_method=card()),
            metadata=stack.md(merchant.secret, idem),
        )
    )
    assert replayed and response.payment_intent.status == PI.CAPTURED  # type: ignore[attr-defined]
    assert await provider_authorizations(stack) - before == 1


async def test_replay_is_identical_and_marked(stack: Stack) -> None:
    merchant = await stack.new_merchant()
    idem = key()
    request = P.CreatePaymentIntentRequest(amount=777, currency="USD", metadata={"k": "v"})
    first, first_replayed = await call_with_marker(
        stack.intents.CreatePaymentIntent(request, metadata=stack.md(merchant.secret, idem))
    )
    second, second_replayed = await call_with_marker(
        stack.intents.CreatePaymentIntent(request, metadata=stack.md(merchant.secret, idem))
    )
    assert not first_replayed and second_replayed
    assert first == second
    listed = await stack.intents.ListPaymentIntents(
        P.ListPaymentIntentsRequest(), metadata=stack.md(merchant.secret)
    )
    assert len(listed.data) == 1


async def test_same_key_with_another_request_or_rpc_is_reused(stack: Stack) -> None:
    merchant = await stack.new_merchant()
    idem = key()
    first = (
        await stack.intents.CreatePaymentIntent(
            P.CreatePaymentIntentRequest(amount=100, currency="USD"), metadata=stack.md(merchant.secret, idem)
        )
    ).payment_intent
    with pytest.raises(grpc.aio.AioRpcError) as other_amount:
        await stack.intents.CreatePaymentIntent(
            P.CreatePaymentIntentRequest(amount=200, currency="USD"), metadata=stack.md(merchant.secret, idem)
        )
    assert errors.from_rpc_error(other_amount.value).reason == "IDEMPOTENCY_KEY_REUSED"
    with pytest.raises(grpc.aio.AioRpcError) as other_rpc:
        await stack.intents.CancelPaymentIntent(
            P.CancelPaymentIntentRequest(id=first.id), metadata=stack.md(merchant.secret, idem)
        )
    assert errors.from_rpc_error(other_rpc.value).reason == "IDEMPOTENCY_KEY_REUSED"
    # Keys are scoped per merchant: another merchant may use the same key.
    other = await stack.new_merchant()
    fresh = await stack.intents.CreatePaymentIntent(
        P.CreatePaymentIntentRequest(amount=200, currency="USD"), metadata=stack.md(other.secret, idem)
    )
    assert fresh.payment_intent.merchant_id == other.id
    # The first intent is untouched.
    got = await stack.intents.GetPaymentIntent(
        P.GetPaymentIntentRequest(id=first.id), metadata=stack.md(merchant.secret)
    )
    assert got.payment_intent.status == PI.CREATED


async def test_confirm_with_key_and_other_amount_of_card_is_reused(stack: Stack) -> None:
    merchant = await stack.new_merchant()
    intent = await create(stack, merchant.secret, 500, capture_method=PI.MANUAL)
    idem = key()
    await stack.intents.ConfirmPaymentIntent(
        P.ConfirmPaymentIntentRequest(id=intent.id, payment_method=card()),
        metadata=stack.md(merchant.secret, idem),
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stack.intents.ConfirmPaymentIntent(
            P.ConfirmPaymentIntentRequest(id=intent.id, payment_method=card("5555555555554444")),
            metadata=stack.md(merchant.secret, idem),
        )
    assert errors.from_rpc_error(caught.value).reason == "IDEMPOTENCY_KEY_REUSED"


async def test_errors_after_execution_are_stored_and_replayed(stack: Stack) -> None:
    merchant = await stack.new_merchant()
    intent = await create(stack, merchant.secret)
    await stack.intents.CancelPaymentIntent(
        P.CancelPaymentIntentRequest(id=intent.id), metadata=stack.md(merchant.secret)
    )
    idem = key()
    outcomes = []
    for _ in range(2):
        call = stack.intents.CapturePaymentIntent(
            P.CapturePaymentIntentRequest(id=intent.id), metadata=stack.md(merchant.secret, idem)
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        remote = errors.from_rpc_error(caught.value)
        outcomes.append(
            (
                remote.code,
                remote.reason,
                remote.message,
                dict(await call.initial_metadata() or ()).get("idempotent-replayed"),
            )
        )
    assert (
        outcomes[0][:3]
        == outcomes[1][:3]
        == (grpc.StatusCode.FAILED_PRECONDITION, "PAYMENT_NOT_CAPTURABLE", outcomes[0][2])
    )
    assert outcomes[0][3] is None and outcomes[1][3] == "true"


async def test_validation_failures_store_nothing(stack: Stack) -> None:
    merchant = await stack.new_merchant()
    idem = key()
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await stack.intents.CreatePaymentIntent(
            P.CreatePaymentIntentRequest(amount=0, currency="USD"), metadata=stack.md(merchant.secret, idem)
        )
    assert errors.from_rpc_error(invalid.value).code is grpc.StatusCode.INVALID_ARGUMENT
    created = await stack.intents.CreatePaymentIntent(
        P.CreatePaymentIntentRequest(amount=10, currency="USD"), metadata=stack.md(merchant.secret, idem)
    )
    assert created.payment_intent.amount == 10
    with pytest.raises(grpc.aio.AioRpcError) as too_long:
        await stack.intents.CreatePaymentIntent(
            P.CreatePaymentIntentRequest(amount=10, currency="USD"),
            metadata=stack.md(merchant.secret, "k" * 256),
        )
    assert errors.from_rpc_error(too_long.value).reason == "IDEMPOTENCY_KEY_INVALID"


async def test_completer_forgets_keys_abandoned_before_any_effect_and_pruner_expires_old_keys(
    stack: Stack,
) -> None:
    merchant = await stack.new_merchant()
    assert stack.payments is not None
    engine = stack.payments.definition.extras["engine"]
    now = datetime.datetime.now(datetime.UTC)
    abandoned, old = key(), key()
    async with engine.begin() as connection:
        await connection.execute(
            idempotency_keys.insert(),
            [
                {
                    "scope": merchant.id,
                    "key": abandoned,
                    "method": "/clearhouse.payments.v1.PaymentIntents/CreatePaymentIntent",
                    "request_hash": "0" * 64,
                    "state": "started",
                    "locked_until": now - datetime.timedelta(seconds=5),
                    "recovery_point": "started",
                    "created_at": now,
                },
                {
                    "scope": merchant.id,
                    "key": old,
                    "method": "/clearhouse.payments.v1.PaymentIntents/CreatePaymentIntent",
                    "request_hash": "0" * 64,
                    "state": "completed",
                    "locked_until": None,
                    "recovery_point": "started",
                    "response_kind": "ok",
                    "response": b"",
                    "created_at": now - datetime.timedelta(days=2),
                    "completed_at": now,
                },
            ],
        )
    # A retry of the abandoned request is not refused as in use: its lock lapsed.
    assert await stack.run_job("complete_idempotency_keys") >= 1
    assert await stack.run_job("prune_idempotency_keys") >= 1
    async with engine.connect() as connection:
        left = (
            (
                await connection.execute(
                    sa.select(idempotency_keys.c.key).where(idempotency_keys.c.scope == merchant.id)
                )
            )
            .scalars()
            .all()
        )
    assert abandoned not in left and old not in left
    created = await stack.intents.CreatePaymentIntent(
        P.CreatePaymentIntentRequest(amount=10, currency="USD"), metadata=stack.md(merchant.secret, abandoned)
    )
    assert created.payment_intent.amount == 10


async def test_fifty_concurrent_captures_exactly_one_succeeds(stack: Stack) -> None:
    merchant = await stack.new_merchant()
    intent = await create(stack, merchant.secret, 5_000, capture_method=PI.MANUAL)
    await stack.intents.ConfirmPaymentIntent(
        P.ConfirmPaymentIntentRequest(id=intent.id, payment_method=card()), metadata=stack.md(merchant.secret)
    )

    async def capture(amount: int) -> str:
        try:
            response = await stack.intents.CapturePaymentIntent(
                P.CapturePaymentIntentRequest(id=intent.id, amount_to_capture=amount),
                metadata=stack.md(merchant.secret),
            )
        except grpc.aio.AioRpcError as error:
            remote = errors.from_rpc_error(error)
            assert remote.reason in {"PAYMENT_NOT_CAPTURABLE", "PAYMENT_INTENT_BUSY"}, remote
            return remote.reason or ""
        assert response.payment_intent.status == PI.CAPTURED
        return f"captured:{response.payment_intent.amount_captured}"

    results = await asyncio.gather(*(capture(4_000 + i) for i in range(CONCURRENT_CAPTURES)))
    winners = [r for r in results if r.startswith("captured:")]
    assert len(winners) == 1, results
    captured_amount = int(winners[0].split(":")[1])
    final = (
        await stack.intents.GetPaymentIntent(
            P.GetPaymentIntentRequest(id=intent.id), metadata=stack.md(merchant.secret)
        )
    ).payment_intent
    assert final.status == PI.CAPTURED and final.amount_captured == captured_amount
    transaction = await stack.provider_stub.GetTransaction(
        provider_pb2.GetTransactionRequest(provider=final.provider, reference=intent.id)
    )
    assert transaction.transaction.amount_captured == captured_amount
    account = await stack.ledger_stub.LookupAccounts(
        ledger_pb2.LookupAccountsRequest(ids=[f"{merchant.id}:USD:pending"])
    )
    assert account.accounts[0].credits_posted == captured_amount


async def test_concurrent_confirms_without_key_authorize_once(stack: Stack) -> None:
    merchant = await stack.new_merchant()
    intent = await create(stack, merchant.secret, 900, capture_method=PI.MANUAL)
    before = await provider_authorizations(stack)

    async def confirm() -> str:
        try:
            response = await stack.intents.ConfirmPaymentIntent(
                P.ConfirmPaymentIntentRequest(id=intent.id, payment_method=card()),
                metadata=stack.md(merchant.secret),
            )
        except grpc.aio.AioRpcError as error:
            remote = errors.from_rpc_error(error)
            assert remote.reason in {"PAYMENT_NOT_CONFIRMABLE", "PAYMENT_INTENT_BUSY"}, remote
            return remote.reason or ""
        return P.PaymentIntent.Status.Name(response.payment_intent.status)

    results = await asyncio.gather(*(confirm() for _ in range(10)))
    assert results.count("AUTHORIZED") == 1, results
    assert await provider_authorizations(stack) - before == 1
