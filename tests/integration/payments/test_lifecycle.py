"""Payment intent lifecycles through gRPC against the real ledger, vault and provider."""

from __future__ import annotations

import datetime

import grpc
import pytest
from clearhouse.ledger.v1 import ledger_pb2
from clearhouse.payments.v1 import balance_pb2, events_pb2, payment_intents_pb2, tokens_pb2
from clearhouse.provider.v1 import provider_pb2
from google.protobuf import timestamp_pb2

from chassis import errors
from tests.integration.payments.conftest import (
    APPROVED_AMEX,
    APPROVED_MASTERCARD,
    APPROVED_VISA,
    DECLINE_EXPIRED,
    DECLINE_GENERIC,
    DECLINE_INCORRECT_CVC,
    DECLINE_INSUFFICIENT_FUNDS,
    PI,
    PROCESSING_ERROR,
    card,
    token,
)
from tests.support.stack import Stack

pytestmark = pytest.mark.asyncio(loop_scope="module")
P = payment_intents_pb2


async def create(
    stack: Stack, secret: str, amount: int = 2500, **fields: object
) -> payment_intents_pb2.PaymentIntent:
    response = await stack.intents.CreatePaymentIntent(
        P.CreatePaymentIntentRequest(amount=amount, currency=fields.pop("currency", "USD"), **fields),  # type: ignore[arg-type]
        metadata=stack.md(secret),
    )
    return response.payment_intent


async def confirm(
    stack: Stack, secret: str, intent_id: str, method: payment_intents_pb2.PaymentMethod, **fields: object
) -> payment_intents_pb2.PaymentIntent:
    response = await stack.intents.ConfirmPaymentIntent(
        P.ConfirmPaymentIntentRequest(id=intent_id, payment_method=method, **fields),  # type: ignore[arg-type]
        metadata=stack.md(secret),
    )
    return response.payment_intent


async def balance(stack: Stack, secret: str) -> dict[str, dict[str, int]]:
    response = await stack.balances.GetBalance(balance_pb2.GetBalanceRequest(), metadata=stack.md(secret))
    return {
        kind: {b.currency: b.amount for b in getattr(response, kind)}
        for kind in ("available", "pending", "reserved")
    }


async def ledger_accounts(
    stack: Stack, merchant_id: str, currency: str = "USD"
) -> dict[str, ledger_pb2.Account]:
    names = ("provider_receivable", "pending", "available", "reserved")
    response = await stack.ledger_stub.LookupAccounts(
        ledger_pb2.LookupAccountsRequest(ids=[f"{merchant_id}:{currency}:{n}" for n in names])
    )
    return {a.id.rsplit(":", 1)[1]: a for a in response.accounts}


def remote(error: grpc.aio.AioRpcError) -> errors.RemoteError:
    return errors.from_rpc_error(error)


async def test_manual_capture_partial_then_balance_and_ledger_are_exact(stack: Stack) -> None:
    merchant = await stack.new_merchant()
    intent = await create(
        stack, merchant.secret, 2500, capture_method=PI.MANUAL, description="Order 1", metadata={"order": "1"}
    )
    assert intent.status == PI.CREATED and intent.id.startswith("pi_")
    assert intent.capture_method == PI.MANUAL and dict(intent.metadata) == {"order": "1"}

    authorized = await confirm(stack, merchant.secret, intent.id, card(APPROVED_VISA))
    assert authorized.status == PI.AUTHORIZED
    assert authorized.amount_capturable == 2500 and authorized.amount_captured == 0
    assert authorized.provider == "provider_a"  # a US card: the country rule picks A
    assert authorized.payment_method.last4 == "4242" and authorized.payment_method.token.startswith("tok_")
    assert "4242424242424242" not in str(authorized)
    assert authorized.provider_reference.startswith("txn_")
    expires = authorized.authorization_expires_at.ToDatetime(tzinfo=datetime.UTC)
    assert datetime.timedelta(days=6, hours=23) < expires - authorized.updated_at.ToDatetime(
        tzinfo=datetime.UTC
    )

    # Authorized: the ledger holds a pending reservation, nothing posted yet.
    accounts = await ledger_accounts(stack, merchant.id)
    assert accounts["pending"].credits_pending == 2500 and accounts["pending"].balance == 0
    assert accounts["provider_receivable"].debits_pending == 2500
    assert (await balance(stack, merchant.secret))["pending"] == {"USD": 0}

    captured = (
        await stack.intents.CapturePaymentIntent(
            P.CapturePaymentIntentRequest(id=intent.id, amount_to_capture=2000),
            metadata=stack.md(merchant.secret),
        )
    ).payment_intent
    fee = 88  # 2.9 % of 2,000 (58) + 30
    assert captured.status == PI.CAPTURED
    assert (captured.amount_captured, captured.amount_capturable, captured.fee_amount) == (2000, 0, fee)

    accounts = await ledger_accounts(stack, merchant.id)
    assert accounts["pending"].credits_pending == 0  # the remaining 500 were released
    assert accounts["pending"].credits_posted == 2000 and accounts["pending"].debits_posted == fee
    assert accounts["pending"].balance == 2000 - fee
    assert accounts["provider_receivable"].balance == 2000
    assert await balance(stack, merchant.secret) == {
        "available": {"USD": 0},
        "pending": {"USD": 2000 - fee},
        "reserved": {"USD": 0},
    }
    lines = await stack.balances.ListBalanceTransactions(
        balance_pb2.ListBalanceTransactionsRequest(source=intent.id), metadata=stack.md(merchant.secret)
    )
    assert [(t.type, t.amount, t.balance_type, t.balance_after) for t in lines.data] == [
        ("fee", -fee, "pending", 2000 - fee),
        ("charge", 2000, "pending", 2000),
    ]
    transfers = await stack.ledger_stub.LookupTransfers(
        ledger_pb2.LookupTransfersRequest(
            ids=[f"{intent.id}:auth", f"{intent.id}:capture", f"{intent.id}:fee"]
        )
    )
    states = {t.id.rsplit(":", 1)[1]: ledger_pb2.Transfer.State.Name(t.state) for t in transfers.transfers}
    assert states == {"auth": "PENDING_POSTED", "capture": "POSTED", "fee": "POSTED"}

    events = await stack.events.ListEvents(
        events_pb2.ListEventsRequest(object_id=intent.id), metadata=stack.md(merchant.secret)
    )
    assert [e.type for e in events.data] == [
        "payment_intent.captured",
        "payment_intent.authorized",
        "payment_intent.created",
    ]
    assert events.data[0].data["object"]["status"] == "CAPTURED"
    one = await stack.events.GetEvent(
        events_pb2.GetEventRequest(id=events.data[0].id), metadata=stack.md(merchant.secret)
    )
    assert one.event.id == events.data[0].id

    with pytest.raises(grpc.aio.AioRpcError) as again:
        await stack.intents.CapturePaymentIntent(
            P.CapturePaymentIntentRequest(id=intent.id), metadata=stack.md(merchant.secret)
        )
    assert remote(again.value).code is grpc.StatusCode.FAILED_PRECONDITION
    assert remote(again.value).reason == "PAYMENT_NOT_CAPTURABLE"


async def test_automatic_capture_posts_charge_and_fee_at_once(stack: Stack) -> None:
    merchant = await stack.new_merchant()
    intent = await create(stack, merchant.secret, 10_000)
    assert intent.capture_method == PI.AUTOMATIC
    captured = await confirm(stack, merchant.secret, intent.id, card(APPROVED_MASTERCARD))
    assert captured.status == PI.CAPTURED
    assert (captured.amount_captured, captured.fee_amount) == (10_000, 290 + 30)
    accounts = await ledger_accounts(stack, merchant.id)
    assert accounts["pending"].balance == 10_000 - 320 and accounts["pending"].credits_pending == 0
    transaction = await stack.provider_stub.GetTransaction(
        provider_pb2.GetTransactionRequest(provider=captured.provider, reference=intent.id)
    )
    assert transaction.transaction.status == provider_pb2.Transaction.CAPTURED
    assert transaction.transaction.amount_captured == 10_000
    events = await stack.events.ListEvents(
        events_pb2.ListEventsRequest(object_id=intent.id), metadata=stack.md(merchant.secret)
    )
    # Each event carries the object as it was at its step.
    assert [(e.type, e.data["object"]["status"]) for e in events.data] == [
        ("payment_intent.captured", "CAPTURED"),
        ("payment_intent.authorized", "AUTHORIZED"),
        ("payment_intent.created", "CREATED"),
    ]


async def test_jpy_has_no_minor_digits_and_fees_follow_pricing(stack: Stack) -> None:
    from clearhouse.payments.v1 import merchants_pb2

    merchant = await stack.new_merchant(
        country="JP", default_currency="JPY", pricing=merchants_pb2.Pricing(fee_basis_points=350, fee_fixed=0)
    )
    intent = await create(stack, merchant.secret, 5_000, currency="JPY")
    captured = await confirm(stack, merchant.secret, intent.id, card(APPROVED_AMEX))
    assert captured.status == PI.CAPTURED and captured.currency == "JPY"
    assert captured.fee_amount == 175
    assert (await balance(stack, merchant.secret))["pending"] == {"JPY": 5_000 - 175}


async def test_cancel_voids_the_authorization(stack: Stack) -> None:
    merchant = await stack.new_merchant()
    intent = await create(stack, merchant.secret, 4_200, capture_method=PI.MANUAL)
    await confirm(stack, merchant.secret, intent.id, card())
    canceled = (
        await stack.intents.CancelPaymentIntent(
            P.CancelPaymentIntentRequest(id=intent.id, cancellation_reason="requested_by_customer"),
            metadata=stack.md(merchant.secret),
        )
    ).payment_intent
    assert canceled.status == PI.CANCELED and canceled.amount_capturable == 0
    assert canceled.cancellation_reason == "requested_by_customer"
    accounts = await ledger_accounts(stack, merchant.id)
    assert accounts["pending"].credits_pending == 0 and accounts["pending"].balance == 0
    transaction = await stack.provider_stub.GetTransaction(
        provider_pb2.GetTransactionRequest(provider=canceled.provider, reference=intent.id)
    )
    assert transaction.transaction.status == provider_pb2.Transaction.VOIDED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stack.intents.CapturePaymentIntent(
            P.CapturePaymentIntentRequest(id=intent.id), metadata=stack.md(merchant.secret)
        )
    assert remote(caught.value).reason == "PAYMENT_NOT_CAPTURABLE"
    with pytest.raises(grpc.aio.AioRpcError) as twice:
        await stack.intents.CancelPaymentIntent(
            P.CancelPaymentIntentRequest(id=intent.id), metadata=stack.md(merchant.secret)
        )
    assert remote(twice.value).reason == "PAYMENT_NOT_CANCELABLE"


async def test_cancel_a_created_intent_and_confirm_refused_after(stack: Stack) -> None:
    merchant = await stack.new_merchant()
    intent = await create(stack, merchant.secret)
    canceled = (
        await stack.intents.CancelPaymentIntent(
            P.CancelPaymentIntentRequest(id=intent.id, cancellation_reason="abandoned"),
            metadata=stack.md(merchant.secret),
        )
    ).payment_intent
    assert canceled.status == PI.CANCELED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await confirm(stack, merchant.secret, intent.id, card())
    assert remote(caught.value).code is grpc.StatusCode.FAILED_PRECONDITION
    assert remote(caught.value).reason == "PAYMENT_NOT_CONFIRMABLE"


@pytest.mark.parametrize(
    ("number", "code", "decline_code"),
    [
        (DECLINE_GENERIC, "card_declined", "generic_decline"),
        (DECLINE_INSUFFICIENT_FUNDS, "card_declined", "insufficient_funds"),
        (DECLINE_EXPIRED, "expired_card", ""),
        (DECLINE_INCORRECT_CVC, "incorrect_cvc", ""),
        (PROCESSING_ERROR, "processing_error", ""),
    ],
)
async def test_decline_then_confirm_again_with_another_card(
    stack: Stack, number: str, code: str, decline_code: str
) -> None:
    merchant = await stack.new_merchant()
    intent = await create(stack, merchant.secret, 1_500, capture_method=PI.MANUAL)
    declined = await confirm(stack, merchant.secret, intent.id, card(number))
    assert declined.status == PI.DECLINED
    assert (declined.last_error.code, declined.last_error.decline_code) == (code, decline_code)
    assert declined.last_error.message and declined.last_error.provider == "provider_a"
    assert declined.amount_capturable == 0
    assert number not in str(declined)

    approved = await confirm(stack, merchant.secret, intent.id, card(APPROVED_VISA))
    assert approved.status == PI.AUTHORIZED and not approved.HasField("last_error")
    # The re-confirmation used a fresh provider reference (<id>:2); the decline stays recorded.
    second = await stack.provider_stub.GetTransaction(
        provider_pb2.GetTransactionRequest(provider="provider_a", reference=f"{intent.id}:2")
    )
    assert second.transaction.status == provider_pb2.Transaction.AUTHORIZED
    assert (await ledger_accounts(stack, merchant.id))["pending"].credits_pending == 1_500
    events = await stack.events.ListEvents(
        events_pb2.ListEventsRequest(object_id=intent.id), metadata=stack.md(merchant.secret)
    )
    assert [e.type for e in events.data] == [
        "payment_intent.authorized",
        "payment_intent.declined",
        "payment_intent.created",
    ]


async def test_tokens_are_usable_only_by_their_merchant(stack: Stack) -> None:
    owner = await stack.new_merchant()
    other = await stack.new_merchant()
    created = await stack.tokens.CreateToken(
        tokens_pb2.CreateTokenRequest(
            card=tokens_pb2.CardDetails(number="4242 4242 4242 4242", exp_month=1, exp_year=2031, cvc="999")
        ),
        metadata=stack.md(owner.secret),
    )
    tok = created.token
    assert tok.id.startswith("tok_") and tok.last4 == "4242" and tok.brand == tokens_pb2.Token.VISA
    assert "4242424242424242" not in str(created)
    fetched = await stack.tokens.GetToken(
        tokens_pb2.GetTokenRequest(id=tok.id), metadata=stack.md(owner.secret)
    )
    assert fetched.token.fingerprint == tok.fingerprint

    intent = await create(stack, owner.secret, 700)
    captured = await confirm(stack, owner.secret, intent.id, token(tok.id))
    assert captured.status == PI.CAPTURED and captured.payment_method.token == tok.id

    foreign = await create(stack, other.secret, 700)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await confirm(stack, other.secret, foreign.id, token(tok.id))
    assert remote(caught.value).code is grpc.StatusCode.NOT_FOUND
    assert remote(caught.value).reason == "TOKEN_NOT_FOUND"
    with pytest.raises(grpc.aio.AioRpcError) as hidden:
        await stack.tokens.GetToken(tokens_pb2.GetTokenRequest(id=tok.id), metadata=stack.md(other.secret))
    assert remote(hidden.value).code is grpc.StatusCode.NOT_FOUND
    # The foreign intent is untouched.
    assert (
        await stack.intents.GetPaymentIntent(
            P.GetPaymentIntentRequest(id=foreign.id), metadata=stack.md(other.secret)
        )
    ).payment_intent.status == PI.CREATED


async def test_invalid_input_is_invalid_argument_with_field_violations(stack: Stack) -> None:
    merchant = await stack.new_merchant()
    with pytest.raises(grpc.aio.AioRpcError) as amount:
        await create(stack, merchant.secret, 0)
    assert remote(amount.value).code is grpc.StatusCode.INVALID_ARGUMENT
    assert remote(amount.value).field_violations[0].field == "amount"
    with pytest.raises(grpc.aio.AioRpcError) as currency:
        await create(stack, merchant.secret, 100, currency="XXZ")
    assert remote(currency.value).field_violations[0].field == "currency"

    intent = await create(stack, merchant.secret, 100)
    with pytest.raises(grpc.aio.AioRpcError) as luhn:
        await confirm(stack, merchant.secret, intent.id, card("4242424242424241"))
    failure = remote(luhn.value)
    assert failure.code is grpc.StatusCode.INVALID_ARGUMENT
    assert failure.field_violations and failure.field_violations[0].field.startswith("payment_method.card")
    assert "4242424242424241" not in failure.message
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stack.intents.ConfirmPaymentIntent(
            P.ConfirmPaymentIntentRequest(id=intent.id), metadata=stack.md(merchant.secret)
        )
    assert remote(missing.value).reason == "PAYMENT_METHOD_REQUIRED"

    manual = await create(stack, merchant.secret, 1_000, capture_method=PI.MANUAL)
    await confirm(stack, merchant.secret, manual.id, card())
    with pytest.raises(grpc.aio.AioRpcError) as too_much:
        await stack.intents.CapturePaymentIntent(
            P.CapturePaymentIntentRequest(id=manual.id, amount_to_capture=1_001),
            metadata=stack.md(merchant.secret),
        )
    assert remote(too_much.value).reason == "AMOUNT_TO_CAPTURE_TOO_LARGE"
    assert remote(too_much.value).field_violations[0].field == "amount_to_capture"
    # Still capturable in full afterwards.
    captured = await stack.intents.CapturePaymentIntent(
        P.CapturePaymentIntentRequest(id=manual.id), metadata=stack.md(merchant.secret)
    )
    assert captured.payment_intent.amount_captured == 1_000


async def test_list_pages_newest_first_with_filters(stack: Stack) -> None:
    merchant = await stack.new_merchant()
    created = [await create(stack, merchant.secret, 100 + i) for i in range(5)]
    await confirm(stack, merchant.secret, created[1].id, card(DECLINE_GENERIC))
    first = await stack.intents.ListPaymentIntents(
        P.ListPaymentIntentsRequest(limit=2), metadata=stack.md(merchant.secret)
    )
    assert [i.id for i in first.data] == [created[4].id, created[3].id] and first.has_more
    rest = await stack.intents.ListPaymentIntents(
        P.ListPaymentIntentsRequest(limit=10, starting_after=first.data[-1].id),
        metadata=stack.md(merchant.secret),
    )
    assert [i.id for i in rest.data] == [created[2].id, created[1].id, created[0].id] and not rest.has_more
    declined = await stack.intents.ListPaymentIntents(
        P.ListPaymentIntentsRequest(status=PI.DECLINED), metadata=stack.md(merchant.secret)
    )
    assert [i.id for i in declined.data] == [created[1].id]
    cutoff = timestamp_pb2.Timestamp()
    cutoff.CopyFrom(created[2].created_at)
    newer = await stack.intents.ListPaymentIntents(
        P.ListPaymentIntentsRequest(created_after=cutoff), metadata=stack.md(merchant.secret)
    )
    assert {i.id for i in newer.data} == {c.id for c in created[2:]}
    older = await stack.intents.ListPaymentIntents(
        P.ListPaymentIntentsRequest(created_before=cutoff), metadata=stack.md(merchant.secret)
    )
    assert {i.id for i in older.data} == {c.id for c in created[:2]}
    with pytest.raises(grpc.aio.AioRpcError) as too_big:
        await stack.intents.ListPaymentIntents(
            P.ListPaymentIntentsRequest(limit=101), metadata=stack.md(merchant.secret)
        )
    assert remote(too_big.value).reason == "INVALID_LIMIT"
