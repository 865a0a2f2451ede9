"""Unknown outcomes: the timeout test card authorizes at the provider but answers too late.

The intent waits in PROCESSING until the resolver asks the provider by reference; it must end
where the provider is, with exactly one authorization and a consistent ledger.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from clearhouse.ledger.v1 import ledger_pb2
from clearhouse.payments.v1 import admin_pb2, events_pb2, payment_intents_pb2
from clearhouse.provider.v1 import provider_pb2

from chassis import errors
from tests.integration.payments.conftest import BACKENDS, PI, TIMEOUT, card, key, stack_for
from tests.support.stack import Stack

pytestmark = pytest.mark.asyncio(loop_scope="module")
P = payment_intents_pb2
PROVIDER_TIMEOUT_SECONDS = 1.0


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BACKENDS)
async def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    overrides = {"provider_timeout_seconds": PROVIDER_TIMEOUT_SECONDS}
    async for running in stack_for(request.param, tmp_path_factory, payments_overrides=overrides):
        yield running


async def authorizations(stack: Stack) -> int:
    state = await stack.provider_stub.GetState(provider_pb2.GetStateRequest(provider="provider_a"))
    return state.providers[0].counters.authorizations


async def get(stack: Stack, secret: str, intent_id: str) -> payment_intents_pb2.PaymentIntent:
    return (
        await stack.intents.GetPaymentIntent(
            P.GetPaymentIntentRequest(id=intent_id), metadata=stack.md(secret)
        )
    ).payment_intent


@pytest.mark.parametrize(
    ("capture_method", "final"), [(PI.AUTOMATIC, PI.CAPTURED), (PI.MANUAL, PI.AUTHORIZED)]
)
async def test_timeout_card_is_processing_until_the_resolver_settles_it(
    stack: Stack, capture_method: int, final: int
) -> None:
    merchant = await stack.new_merchant()
    intent = (
        await stack.intents.CreatePaymentIntent(
            P.CreatePaymentIntentRequest(amount=6_100, currency="USD", capture_method=capture_method),  # type: ignore[arg-type]
            metadata=stack.md(merchant.secret),
        )
    ).payment_intent
    before = await authorizations(stack)
    idem = key()
    processing = (
        await stack.intents.ConfirmPaymentIntent(
            P.ConfirmPaymentIntentRequest(id=intent.id, payment_method=card(TIMEOUT)),
            metadata=stack.md(merchant.secret, idem),
        )
    ).payment_intent
    assert processing.status == PI.PROCESSING
    assert processing.provider == "provider_a"
    # The provider did authorize; nothing is in the ledger yet.
    found = await stack.provider_stub.GetTransaction(
        provider_pb2.GetTransactionRequest(provider="provider_a", reference=intent.id)
    )
    assert found.transaction.status == provider_pb2.Transaction.AUTHORIZED
    lookup = await stack.ledger_stub.LookupTransfers(
        ledger_pb2.LookupTransfersRequest(ids=[f"{intent.id}:auth"])
    )
    assert not lookup.transfers
    # A replay of the confirmation gives the recorded answer; a capture must wait.
    replay = await stack.intents.ConfirmPaymentIntent(
        P.ConfirmPaymentIntentRequest(id=intent.id, payment_method=card(TIMEOUT)),
        metadata=stack.md(merchant.secret, idem),
    )
    assert replay.payment_intent.status == PI.PROCESSING
    board = await stack.admin.GetProviderHealth(
        admin_pb2.GetProviderHealthRequest(), metadata=stack.admin_md()
    )
    assert {b.provider: b.consecutive_failures for b in board.providers}["provider_a"] >= 1

    assert await stack.run_job("resolve_unknown_outcomes") >= 1
    resolved = await get(stack, merchant.secret, intent.id)
    assert resolved.status == final
    assert resolved.provider_reference == found.transaction.id
    assert await authorizations(stack) - before == 1  # resolved by lookup, never re-authorized
    accounts = await stack.ledger_stub.LookupAccounts(
        ledger_pb2.LookupAccountsRequest(ids=[f"{merchant.id}:USD:pending"])
    )
    pending = accounts.accounts[0]
    if final == PI.CAPTURED:
        assert (
            pending.credits_posted == 6_100 and resolved.fee_amount == 177 + 30
        )  # 2.9 % of 6,100, rounded half up, + 30
    else:
        assert pending.credits_pending == 6_100 and resolved.amount_capturable == 6_100
    events = await stack.events.ListEvents(
        events_pb2.ListEventsRequest(object_id=intent.id), metadata=stack.md(merchant.secret)
    )
    types = [e.type for e in events.data]
    assert types[-2:] == ["payment_intent.processing", "payment_intent.created"]
    assert "payment_intent.authorized" in types

    # Nothing is left for the resolver; a second pass does nothing.
    assert await stack.run_job("resolve_unknown_outcomes") == 0


async def test_a_request_on_a_processing_intent_resolves_it_first(stack: Stack) -> None:
    merchant = await stack.new_merchant()
    intent = (
        await stack.intents.CreatePaymentIntent(
            P.CreatePaymentIntentRequest(amount=800, currency="USD", capture_method=PI.MANUAL),
            metadata=stack.md(merchant.secret),
        )
    ).payment_intent
    processing = (
        await stack.intents.ConfirmPaymentIntent(
            P.ConfirmPaymentIntentRequest(id=intent.id, payment_method=card(TIMEOUT)),
            metadata=stack.md(merchant.secret),
        )
    ).payment_intent
    assert processing.status == PI.PROCESSING
    before = await authorizations(stack)
    # Capturing asks the provider about the pending authorization first, then captures it.
    captured = await stack.intents.CapturePaymentIntent(
        P.CapturePaymentIntentRequest(id=intent.id), metadata=stack.md(merchant.secret)
    )
    assert captured.payment_intent.status == PI.CAPTURED
    assert await authorizations(stack) == before
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stack.intents.ConfirmPaymentIntent(
            P.ConfirmPaymentIntentRequest(id=intent.id, payment_method=card()),
            metadata=stack.md(merchant.secret),
        )
    assert errors.from_rpc_error(caught.value).reason == "PAYMENT_NOT_CONFIRMABLE"


async def test_expired_authorizations_are_voided_by_the_worker(stack: Stack) -> None:
    import datetime

    import sqlalchemy as sa

    from payments_svc.adapters.orm import payment_intents

    merchant = await stack.new_merchant()
    intent = (
        await stack.intents.CreatePaymentIntent(
            P.CreatePaymentIntentRequest(amount=1_200, currency="USD", capture_method=PI.MANUAL),
            metadata=stack.md(merchant.secret),
        )
    ).payment_intent
    await stack.intents.ConfirmPaymentIntent(
        P.ConfirmPaymentIntentRequest(id=intent.id, payment_method=card()), metadata=stack.md(merchant.secret)
    )
    assert stack.payments is not None
    engine = stack.payments.definition.extras["engine"]
    # Move the authorization window into the past (the clock is the database's record).
    async with engine.begin() as connection:
        await connection.execute(
            sa.update(payment_intents)
            .where(payment_intents.c.id == intent.id)
            .values(
                authorization_expires_at=datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)
            )
        )
    assert await stack.run_job("expire_authorizations") >= 1
    expired = await get(stack, merchant.secret, intent.id)
    assert expired.status == PI.CANCELED and expired.cancellation_reason == "authorization_expired"
    transaction = await stack.provider_stub.GetTransaction(
        provider_pb2.GetTransactionRequest(provider="provider_a", reference=intent.id)
    )
    assert transaction.transaction.status == provider_pb2.Transaction.VOIDED
    accounts = await stack.ledger_stub.LookupAccounts(
        ledger_pb2.LookupAccountsRequest(ids=[f"{merchant.id}:USD:pending"])
    )
    assert accounts.accounts[0].credits_pending == 0
