"""Test cards, idempotency by reference, capture/void/refund limits, no PAN in storage."""

from __future__ import annotations

import asyncio
import secrets

import grpc
import pytest
import sqlalchemy as sa
from clearhouse.provider.v1 import provider_pb2, provider_pb2_grpc

from chassis import channels, errors
from provider_sim.adapters import orm
from tests.integration.provider.conftest import FUTURE_YEAR, Provider

Status = provider_pb2.Transaction.Status

# (card number, expected status, expected decline code) — DESIGN.md's table.
ANSWERED_CARDS = [
    ("4242424242424242", Status.AUTHORIZED, ""),
    ("5555555555554444", Status.AUTHORIZED, ""),
    ("378282246310005", Status.AUTHORIZED, ""),
    ("4000000000000259", Status.AUTHORIZED, ""),
    ("4000000000000002", Status.DECLINED, "generic_decline"),
    ("4000000000009995", Status.DECLINED, "insufficient_funds"),
    ("4000000000000069", Status.DECLINED, "expired_card"),
    ("4000000000000127", Status.DECLINED, "incorrect_cvc"),
]


def ref() -> str:
    return f"pi_test_{secrets.token_hex(8)}"


def authorize_request(
    number: str, *, reference: str | None = None, amount: int = 2500, provider: str = "provider_a"
) -> provider_pb2.AuthorizeRequest:
    return provider_pb2.AuthorizeRequest(
        provider=provider,
        reference=reference or ref(),
        amount=amount,
        currency="USD",
        merchant_id="mch_test",
        card=provider_pb2.CardData(number=number, exp_month=12, exp_year=FUTURE_YEAR, cvc="123"),
    )


async def count(provider: Provider, table: sa.Table) -> int:
    engine = provider.running.definition.extras["engine"]
    async with engine.connect() as connection:
        return int((await connection.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


async def rpc_error(call: object) -> errors.RemoteError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return errors.from_rpc_error(caught.value)


async def test_every_answered_test_card_gives_its_result_and_repeats_replay(provider: Provider) -> None:
    for number, status, decline_code in ANSWERED_CARDS:
        request = authorize_request(number)
        first = await provider.stub.Authorize(request, timeout=5)
        assert first.transaction.status == status, number
        assert first.transaction.decline_code == decline_code, number
        assert first.transaction.last4 == number[-4:]
        assert not first.replayed
        if status == Status.AUTHORIZED:
            assert len(first.transaction.authorization_code) == 6
        else:
            assert first.transaction.message
        before = await count(provider, orm.transactions)
        again = await provider.stub.Authorize(request, timeout=5)
        assert again.replayed
        assert again.transaction == first.transaction
        assert await count(provider, orm.transactions) == before
    assert await count(provider, orm.transactions) == len(ANSWERED_CARDS)


async def test_processing_error_card_is_unavailable_and_records_nothing(provider: Provider) -> None:
    request = authorize_request("4000000000000119")
    error = await rpc_error(provider.stub.Authorize(request, timeout=5))
    assert error.code is grpc.StatusCode.UNAVAILABLE
    assert error.reason == "PROCESSING_ERROR"
    missing = await rpc_error(
        provider.stub.GetTransaction(
            provider_pb2.GetTransactionRequest(provider="provider_a", reference=request.reference), timeout=5
        )
    )
    assert missing.code is grpc.StatusCode.NOT_FOUND
    assert missing.reason == "TRANSACTION_NOT_FOUND"


async def test_timeout_card_authorizes_but_answers_after_the_deadline(provider: Provider) -> None:
    request = authorize_request("4000000000007130")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await provider.stub.Authorize(request, timeout=0.5)
    assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    found = await provider.stub.GetTransaction(
        provider_pb2.GetTransactionRequest(provider="provider_a", reference=request.reference), timeout=5
    )
    assert found.transaction.status == Status.AUTHORIZED
    # Resolving the unknown outcome: a retry with the same reference answers at once.
    again = await provider.stub.Authorize(request, timeout=5)
    assert again.replayed and again.transaction.id == found.transaction.id
    state = await provider.stub.GetState(provider_pb2.GetStateRequest(provider="provider_a"), timeout=5)
    assert state.providers[0].counters.timeouts == 1


async def test_reference_reused_for_a_different_request_is_refused(provider: Provider) -> None:
    request = authorize_request("4242424242424242")
    await provider.stub.Authorize(request, timeout=5)
    other = authorize_request("4242424242424242", reference=request.reference, amount=999)
    error = await rpc_error(provider.stub.Authorize(other, timeout=5))
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason == "REFERENCE_REUSED"
    # The same reference at the other provider is a different authorization.
    at_b = await provider.stub.Authorize(
        authorize_request("4242424242424242", reference=request.reference, provider="provider_b"), timeout=5
    )
    assert at_b.transaction.provider == "provider_b" and not at_b.replayed


async def test_invalid_requests_name_the_field_and_never_echo_the_card(provider: Provider) -> None:
    bad_luhn = authorize_request("4242424242424241")
    error = await rpc_error(provider.stub.Authorize(bad_luhn, timeout=5))
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason == "INVALID_CARD_NUMBER"
    assert [v.field for v in error.field_violations] == ["card.number"]
    assert "4242424242424241" not in error.message
    unknown = authorize_request("4242424242424242", provider="provider_c")
    error = await rpc_error(provider.stub.Authorize(unknown, timeout=5))
    assert error.reason == "UNKNOWN_PROVIDER"
    zero = authorize_request("4242424242424242", amount=0)
    error = await rpc_error(provider.stub.Authorize(zero, timeout=5))
    assert error.reason == "INVALID_AMOUNT"


async def test_storage_holds_last4_and_fingerprint_never_the_card_number(provider: Provider) -> None:
    numbers = [number for number, _, _ in ANSWERED_CARDS]
    for number in numbers:
        await provider.stub.Authorize(authorize_request(number), timeout=5)
    engine = provider.running.definition.extras["engine"]
    dumped = []
    async with engine.connect() as connection:
        for table in orm.metadata.sorted_tables:
            for row in (await connection.execute(sa.select(table))).all():
                dumped.append(" ".join(str(value) for value in row))
    text = "\n".join(dumped)
    for number in numbers:
        assert number not in text
    # Same card, same fingerprint; different cards, different fingerprints.
    a = await provider.stub.Authorize(authorize_request("4242424242424242"), timeout=5)
    b = await provider.stub.Authorize(authorize_request("4242424242424242"), timeout=5)
    c = await provider.stub.Authorize(authorize_request("5555555555554444"), timeout=5)
    assert a.transaction.card_fingerprint == b.transaction.card_fingerprint != c.transaction.card_fingerprint


async def authorized(
    provider: Provider, amount: int = 10_000, name: str = "provider_a"
) -> provider_pb2.Transaction:
    response = await provider.stub.Authorize(
        authorize_request("4242424242424242", amount=amount, provider=name), timeout=5
    )
    assert response.transaction.status == Status.AUTHORIZED
    return response.transaction


def capture(
    txn: provider_pb2.Transaction, amount: int = 0, reference: str = ""
) -> provider_pb2.CaptureRequest:
    return provider_pb2.CaptureRequest(
        provider=txn.provider, transaction_id=txn.id, amount=amount, reference=reference or f"cap_{ref()}"
    )


def refund(txn: provider_pb2.Transaction, amount: int, reference: str = "") -> provider_pb2.RefundRequest:
    return provider_pb2.RefundRequest(
        provider=txn.provider, transaction_id=txn.id, amount=amount, reference=reference or f"re_{ref()}"
    )


async def test_capture_limits_and_capture_idempotency(provider: Provider) -> None:
    txn = await authorized(provider)
    error = await rpc_error(provider.stub.Capture(capture(txn, 10_001), timeout=5))
    assert error.code is grpc.StatusCode.FAILED_PRECONDITION
    assert error.reason == "CAPTURE_EXCEEDS_AUTHORIZED"
    request = capture(txn, 6_000)
    first = await provider.stub.Capture(request, timeout=5)
    assert first.transaction.status == Status.CAPTURED
    assert first.transaction.amount_captured == 6_000
    again = await provider.stub.Capture(request, timeout=5)
    assert again.replayed and again.transaction == first.transaction
    assert await count(provider, orm.captures) == 1
    # provider_a captures once per authorization, even when money is left.
    error = await rpc_error(provider.stub.Capture(capture(txn, 1_000), timeout=5))
    assert error.reason == "TRANSACTION_ALREADY_CAPTURED"
    void_error = await rpc_error(
        provider.stub.Void(provider_pb2.VoidRequest(provider="provider_a", transaction_id=txn.id), timeout=5)
    )
    assert void_error.code is grpc.StatusCode.FAILED_PRECONDITION
    assert void_error.reason == "TRANSACTION_ALREADY_CAPTURED"


async def test_multi_capture_profile_allows_partial_captures_up_to_the_authorization(
    provider: Provider,
) -> None:
    txn = await authorized(provider, amount=1_000, name="provider_b")
    assert (await provider.stub.Capture(capture(txn, 400), timeout=5)).transaction.amount_captured == 400
    assert (await provider.stub.Capture(capture(txn, 600), timeout=5)).transaction.amount_captured == 1_000
    error = await rpc_error(provider.stub.Capture(capture(txn, 1), timeout=5))
    assert error.reason == "TRANSACTION_ALREADY_CAPTURED"


async def test_void_then_capture_is_refused_and_void_repeats_harmlessly(provider: Provider) -> None:
    txn = await authorized(provider)
    request = provider_pb2.VoidRequest(provider="provider_a", transaction_id=txn.id)
    voided = await provider.stub.Void(request, timeout=5)
    assert voided.transaction.status == Status.VOIDED
    assert (await provider.stub.Void(request, timeout=5)).transaction.status == Status.VOIDED
    error = await rpc_error(provider.stub.Capture(capture(txn), timeout=5))
    assert error.reason == "TRANSACTION_VOIDED"
    declined = (await provider.stub.Authorize(authorize_request("4000000000000002"), timeout=5)).transaction
    error = await rpc_error(provider.stub.Capture(capture(declined), timeout=5))
    assert error.reason == "TRANSACTION_DECLINED"


async def test_refunds_partial_several_never_more_than_captured(provider: Provider) -> None:
    txn = await authorized(provider)
    error = await rpc_error(provider.stub.Refund(refund(txn, 100), timeout=5))
    assert error.reason == "TRANSACTION_NOT_CAPTURED"
    await provider.stub.Capture(capture(txn, 8_000), timeout=5)
    first_request = refund(txn, 3_000)
    first = await provider.stub.Refund(first_request, timeout=5)
    assert first.refund.id.startswith("prf_") and first.transaction.amount_refunded == 3_000
    replay = await provider.stub.Refund(first_request, timeout=5)
    assert replay.replayed and replay.refund == first.refund and replay.transaction == first.transaction
    await provider.stub.Refund(refund(txn, 4_000), timeout=5)
    error = await rpc_error(provider.stub.Refund(refund(txn, 1_001), timeout=5))
    assert error.code is grpc.StatusCode.FAILED_PRECONDITION
    assert error.reason == "REFUND_EXCEEDS_CAPTURED"
    last = await provider.stub.Refund(refund(txn, 1_000), timeout=5)
    assert last.transaction.status == Status.REFUNDED
    assert last.transaction.amount_refunded == 8_000
    view = await provider.stub.GetTransaction(
        provider_pb2.GetTransactionRequest(provider="provider_a", transaction_id=txn.id), timeout=5
    )
    assert [r.amount for r in view.refunds] == [3_000, 4_000, 1_000]
    assert await count(provider, orm.refunds) == 3
    other_txn = await authorized(provider)
    error = await rpc_error(
        provider.stub.Refund(refund(other_txn, 3_000, first_request.reference), timeout=5)
    )
    assert error.reason == "REFERENCE_REUSED"


async def test_lookup_of_another_providers_transaction_is_not_found(provider: Provider) -> None:
    txn = await authorized(provider)
    error = await rpc_error(
        provider.stub.GetTransaction(
            provider_pb2.GetTransactionRequest(provider="provider_b", transaction_id=txn.id), timeout=5
        )
    )
    assert error.code is grpc.StatusCode.NOT_FOUND


async def test_callers_other_than_payments_and_tools_are_refused(provider: Provider) -> None:
    channel = channels.open_channel(provider.running.address, provider.settings, "vault")
    try:
        stub = provider_pb2_grpc.ProviderStub(channel)
        error = await rpc_error(stub.GetState(provider_pb2.GetStateRequest(), timeout=5))
    finally:
        await channel.close()
    assert error.code is grpc.StatusCode.PERMISSION_DENIED
    assert error.reason == "CALLER_NOT_ALLOWED"


async def test_concurrent_repeats_of_one_reference_create_one_transaction(provider: Provider) -> None:
    request = authorize_request("4242424242424242", amount=10_000)
    responses = await asyncio.gather(*(provider.stub.Authorize(request, timeout=10) for _ in range(8)))
    assert len({response.transaction.id for response in responses}) == 1
    assert [response.replayed for response in responses].count(False) == 1
    assert await count(provider, orm.transactions) == 1
    txn = responses[0].transaction
    await provider.stub.Capture(capture(txn, 5_000), timeout=5)
    refunds = [refund(txn, 1_000) for _ in range(8)]
    outcomes = await asyncio.gather(
        *(provider.stub.Refund(request, timeout=10) for request in refunds), return_exceptions=True
    )
    succeeded = [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]
    assert len(succeeded) == 5
    for outcome in outcomes:
        if isinstance(outcome, grpc.aio.AioRpcError):
            assert errors.from_rpc_error(outcome).reason == "REFUND_EXCEEDS_CAPTURED"
    view = await provider.stub.GetTransaction(
        provider_pb2.GetTransactionRequest(provider="provider_a", transaction_id=txn.id), timeout=5
    )
    assert view.transaction.amount_refunded == 5_000 and len(view.refunds) == 5
