"""Chargeback webhooks reach a real receiver on loopback, signed, retried, duplicated when injected."""

from __future__ import annotations

import json

from clearhouse.provider.v1 import provider_pb2

from chassis import secrets, signatures
from provider_sim.bootstrap import webhook_secret_path
from tests.integration.provider.conftest import Provider, ReceivedWebhook
from tests.integration.provider.test_authorize_and_lifecycle import authorize_request, capture


def verified(provider: Provider, webhook: ReceivedWebhook, name: str = "provider_a") -> dict[str, object]:
    secret = secrets.load_or_create(webhook_secret_path(provider.var_dir, name))
    signatures.verify(secret, webhook.headers["provider-signature"], webhook.body)
    assert webhook.headers["content-type"] == "application/json"
    assert webhook.path == f"/v1/provider_webhooks/{name}"
    payload: dict[str, object] = json.loads(webhook.body)
    return payload


async def captured(provider: Provider, number: str, amount: int = 4_200) -> provider_pb2.Transaction:
    authorized = await provider.stub.Authorize(authorize_request(number, amount=amount), timeout=5)
    return (await provider.stub.Capture(capture(authorized.transaction), timeout=5)).transaction


async def test_chargeback_card_sends_a_signed_chargeback_after_capture(provider: Provider) -> None:
    txn = await captured(provider, "4000000000000259")
    assert txn.status == provider_pb2.Transaction.Status.CAPTURED
    [webhook] = await provider.receiver.wait_for(lambda received: len(received) >= 1)
    payload = verified(provider, webhook)
    assert payload["type"] == "chargeback.opened"
    assert str(payload["id"]).startswith("pevt_")
    assert payload["provider"] == "provider_a"
    data = payload["data"]
    assert isinstance(data, dict)
    assert data["transaction_id"] == txn.id
    assert data["reference"] == txn.reference
    assert data["merchant_id"] == "mch_test"
    assert data["amount"] == 4_200 and data["currency"] == "USD" and data["reason"] == "fraudulent"
    assert str(data["dispute_id"]).startswith("pdp_")
    found = await provider.stub.GetTransaction(
        provider_pb2.GetTransactionRequest(provider="provider_a", transaction_id=txn.id), timeout=5
    )
    assert found.transaction.status == provider_pb2.Transaction.Status.CHARGED_BACK
    # An ordinary card captured meanwhile sends nothing.
    await captured(provider, "4242424242424242")
    state = await provider.stub.GetState(provider_pb2.GetStateRequest(provider="provider_a"), timeout=5)
    assert state.providers[0].counters.webhooks_sent == 1


async def test_injected_duplicates_carry_the_same_event_id(provider: Provider) -> None:
    await provider.stub.ConfigureFailures(
        provider_pb2.ConfigureFailuresRequest(
            provider="provider_a", config=provider_pb2.FailureConfig(duplicate_webhook_rate=1.0, seed=3)
        ),
        timeout=5,
    )
    txn = await captured(provider, "4242424242424242")
    triggered = await provider.stub.TriggerChargeback(
        provider_pb2.TriggerChargebackRequest(
            provider="provider_a", transaction_id=txn.id, amount=1_000, reason="product_not_received"
        ),
        timeout=5,
    )
    received = await provider.receiver.wait_for(lambda received: len(received) >= 2)
    first, second = (verified(provider, webhook) for webhook in received[:2])
    assert first["id"] == second["id"] == triggered.event_id
    assert received[0].body == received[1].body
    data = first["data"]
    assert isinstance(data, dict)
    assert data["dispute_id"] == triggered.dispute_id and data["amount"] == 1_000
    assert data["reason"] == "product_not_received"


async def test_failed_deliveries_are_retried_with_the_same_event(provider: Provider) -> None:
    provider.receiver.fail_first = 2
    txn = await captured(provider, "4242424242424242")
    triggered = await provider.stub.TriggerChargeback(
        provider_pb2.TriggerChargebackRequest(provider="provider_a", transaction_id=txn.id), timeout=5
    )
    received = await provider.receiver.wait_for(lambda received: len(received) >= 3)
    assert [verified(provider, webhook)["id"] for webhook in received] == [triggered.event_id] * 3
    state = await provider.stub.GetState(provider_pb2.GetStateRequest(provider="provider_a"), timeout=5)
    assert state.providers[0].counters.webhook_failures == 2
    assert state.providers[0].counters.webhooks_sent == 1


async def test_resolving_a_chargeback_sends_won_or_lost(provider: Provider) -> None:
    won_txn = await captured(provider, "4242424242424242")
    lost_txn = await captured(provider, "5555555555554444")
    disputes = {}
    for txn in (won_txn, lost_txn):
        triggered = await provider.stub.TriggerChargeback(
            provider_pb2.TriggerChargebackRequest(provider="provider_a", transaction_id=txn.id), timeout=5
        )
        disputes[txn.id] = triggered.dispute_id
    won = await provider.stub.ResolveChargeback(
        provider_pb2.ResolveChargebackRequest(
            provider="provider_a",
            dispute_id=disputes[won_txn.id],
            outcome=provider_pb2.ResolveChargebackRequest.WON,
        ),
        timeout=5,
    )
    assert won.transaction.status == provider_pb2.Transaction.Status.CAPTURED
    lost = await provider.stub.ResolveChargeback(
        provider_pb2.ResolveChargebackRequest(
            provider="provider_a",
            dispute_id=disputes[lost_txn.id],
            outcome=provider_pb2.ResolveChargebackRequest.LOST,
        ),
        timeout=5,
    )
    assert lost.transaction.status == provider_pb2.Transaction.Status.CHARGED_BACK
    received = await provider.receiver.wait_for(lambda received: len(received) >= 4)
    by_id = {payload["id"]: payload for payload in (verified(provider, webhook) for webhook in received)}
    assert by_id[won.event_id]["type"] == "chargeback.won"
    assert by_id[lost.event_id]["type"] == "chargeback.lost"
    again = provider.stub.ResolveChargeback(
        provider_pb2.ResolveChargebackRequest(
            provider="provider_a",
            dispute_id=disputes[won_txn.id],
            outcome=provider_pb2.ResolveChargebackRequest.LOST,
        ),
        timeout=5,
    )
    from tests.integration.provider.test_authorize_and_lifecycle import rpc_error

    error = await rpc_error(again)
    assert error.reason == "DISPUTE_ALREADY_RESOLVED"


async def test_delivery_gives_up_after_the_attempt_limit(provider: Provider) -> None:
    import asyncio

    import sqlalchemy as sa

    from provider_sim.adapters import orm
    from provider_sim.domain.webhooks import WEBHOOK_ATTEMPTS_MAX

    provider.receiver.fail_first = 1_000
    txn = await captured(provider, "4242424242424242")
    triggered = await provider.stub.TriggerChargeback(
        provider_pb2.TriggerChargebackRequest(provider="provider_a", transaction_id=txn.id), timeout=5
    )
    await provider.receiver.wait_for(lambda received: len(received) >= WEBHOOK_ATTEMPTS_MAX)
    engine = provider.running.definition.extras["engine"]
    query = sa.select(orm.webhook_events.c.status, orm.webhook_events.c.attempts).where(
        orm.webhook_events.c.id == triggered.event_id
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        async with engine.connect() as connection:
            status, attempts = (await connection.execute(query)).one()
        if status == "failed" or loop.time() > deadline:
            break
        await asyncio.sleep(0.02)
    assert (status, attempts) == ("failed", WEBHOOK_ATTEMPTS_MAX)
    # Nothing more is sent once the event is given up: a further delivery pass finds nothing due.
    assert await provider.running.definition.extras["dispatcher"].deliver_due() == 0
    assert len(provider.receiver.received) == WEBHOOK_ATTEMPTS_MAX
