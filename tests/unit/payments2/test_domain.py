"""Pure domain of part 2: refund and dispute rules, the webhook schedule and SSRF checks,
reconciliation, postings that balance, and the payment-outcome metric."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payments_svc.domain import disputes, postings, reconciliation, refunds, webhooks
from payments_svc.domain.errors import Forbidden, IllegalTransition, InvalidRequest
from payments_svc.domain.events import Event
from payments_svc.domain.payments import CaptureMethod, PaymentIntent, Status
from payments_svc.service_layer import payment_metrics

NOW = datetime.datetime(2026, 3, 14, 9, 0, tzinfo=datetime.UTC)


def intent(status: Status = Status.CAPTURED, captured: int = 10_000, refunded: int = 0) -> PaymentIntent:
    return PaymentIntent(
        id="pi_X",
        merchant_id="mch_X",
        status=status,
        amount=captured,
        currency="USD",
        capture_method=CaptureMethod.AUTOMATIC,
        created_at=NOW,
        updated_at=NOW,
        amount_captured=captured,
        amount_refunded=refunded,
    )


def refund(
    requested_by: str = "alice", status: refunds.RefundStatus = refunds.RefundStatus.PENDING_APPROVAL
) -> refunds.Refund:
    return refunds.Refund(
        id="re_X",
        merchant_id="mch_X",
        payment_intent_id="pi_X",
        amount=100,
        currency="USD",
        status=status,
        reason=refunds.RefundReason.UNSPECIFIED,
        requested_by=requested_by,
        created_at=NOW,
        updated_at=NOW,
    )


def test_refund_amounts_never_exceed_the_capture() -> None:
    assert refunds.check_refundable(intent(), None, reserved=2_500) == 7_500
    assert refunds.check_refundable(intent(status=Status.SETTLED), 7_500, reserved=2_500) == 7_500
    with pytest.raises(InvalidRequest) as too_much:
        refunds.check_refundable(intent(), 7_501, reserved=2_500)
    assert too_much.value.reason == "REFUND_EXCEEDS_CAPTURED"
    with pytest.raises(IllegalTransition) as full:
        refunds.check_refundable(intent(), None, reserved=10_000)
    assert full.value.reason == "PAYMENT_FULLY_REFUNDED"
    for status, reason in (
        (Status.AUTHORIZED, "PAYMENT_NOT_REFUNDABLE"),
        (Status.DISPUTED, "PAYMENT_DISPUTED"),
    ):
        with pytest.raises(IllegalTransition) as wrong:
            refunds.check_refundable(intent(status=status), None, reserved=0)
        assert wrong.value.reason == reason


def test_maker_checker_needs_another_principal() -> None:
    refunds.check_checker(refund("alice"), "bob")
    for principal in ("alice", ""):
        with pytest.raises(Forbidden) as refused:
            refunds.check_checker(refund("alice"), principal)
        assert refused.value.reason == "REFUND_SELF_APPROVAL_FORBIDDEN"
    with pytest.raises(IllegalTransition):
        refunds.check_reviewable(refund(status=refunds.RefundStatus.APPROVING))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=4_000), max_size=10))
def test_refunds_reach_refunded_exactly_at_the_capture(amounts: list[int]) -> None:
    current = intent(captured=10_000)
    for amount in amounts:
        try:
            accepted = refunds.check_refundable(current, amount, reserved=current.amount_refunded)
        except (InvalidRequest, IllegalTransition):
            continue
        current = refunds.intent_after_refund(current, accepted, NOW)
        assert current.amount_refunded <= current.amount_captured
        assert (current.status is Status.REFUNDED) == (current.amount_refunded == 10_000)


def test_disputes_rules() -> None:
    assert disputes.disputed_amount(intent(refunded=4_000), None) == 6_000
    with pytest.raises(IllegalTransition) as refunded:
        disputes.disputed_amount(intent(status=Status.REFUNDED, refunded=10_000), None)
    assert refunded.value.reason == "PAYMENT_FULLY_REFUNDED"
    with pytest.raises(InvalidRequest):
        disputes.disputed_amount(intent(refunded=4_000), 6_001)
    assert disputes.reason_from_provider("fraudulent") is disputes.DisputeReason.FRAUDULENT
    assert disputes.reason_from_provider("whatever") is disputes.DisputeReason.GENERAL
    opened = disputes.Dispute(
        id="dp_X",
        merchant_id="mch_X",
        payment_intent_id="pi_X",
        amount=1,
        currency="USD",
        fee=1_500,
        status=disputes.DisputeStatus.OPENED,
        reason=disputes.DisputeReason.GENERAL,
        intent_status_before=Status.CAPTURED,
        created_at=NOW,
        updated_at=NOW,
    )
    reviewed = disputes.submit_evidence(opened, {"explanation": "shipped"}, NOW)
    assert reviewed.status is disputes.DisputeStatus.UNDER_REVIEW
    won = disputes.resolve(reviewed, True, NOW)
    assert (won.status, won.resolved_at) == (disputes.DisputeStatus.WON, NOW)
    with pytest.raises(IllegalTransition):
        disputes.resolve(won, False, NOW)


def test_retry_schedule_spans_about_three_days_and_scales() -> None:
    total = sum(webhooks.RETRY_DELAYS_SECONDS)
    assert 2.5 * 86_400 <= total <= 3.5 * 86_400
    assert list(webhooks.RETRY_DELAYS_SECONDS) == sorted(webhooks.RETRY_DELAYS_SECONDS)
    assert webhooks.next_attempt_at(0, NOW, 1.0) == NOW
    assert webhooks.next_attempt_at(1, NOW, 1.0) == NOW + datetime.timedelta(seconds=60)
    assert webhooks.next_attempt_at(2, NOW, 0.5) == NOW + datetime.timedelta(seconds=150)
    assert webhooks.next_attempt_at(webhooks.ATTEMPTS_MAX, NOW, 1.0) is None
    delivery = webhooks.Delivery(
        "wd_X", "mch_X", "we_X", "evt_X", "t", webhooks.DeliveryStatus.PENDING, (), NOW, NOW
    )
    for number in range(1, webhooks.ATTEMPTS_MAX + 1):
        assert delivery.status is webhooks.DeliveryStatus.PENDING
        delivery = webhooks.record_attempt(delivery, webhooks.Attempt(number, NOW, 503, 1), 1.0)
    assert delivery.status is webhooks.DeliveryStatus.DEAD_LETTERED
    delivered = webhooks.record_attempt(
        webhooks.Delivery(
            "wd_X", "mch_X", "we_X", "evt_X", "t", webhooks.DeliveryStatus.PENDING, (), NOW, NOW
        ),
        webhooks.Attempt(1, NOW, 204, 1),
        1.0,
    )
    assert (delivered.status, delivered.delivered_at) == (webhooks.DeliveryStatus.DELIVERED, NOW)


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hooks",
        "https://localhost/hooks",
        "https://127.0.0.1/hooks",
        "https://10.0.0.5/hooks",
        "https://192.168.1.1/",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hooks",
        "https://metadata.internal/",
        "https://user:pw@example.com/",
    ],
)
def test_private_targets_and_plain_http_are_refused_outside_development(url: str) -> None:
    with pytest.raises(InvalidRequest):
        webhooks.validate_endpoint(url, [], "", allow_private=False)


def test_public_https_endpoint_and_development_loopback() -> None:
    assert webhooks.validate_endpoint("https://example.com/h", [], "", allow_private=False)[1] == ("*",)
    assert webhooks.validate_endpoint("http://127.0.0.1:9/h", ["a", "a"], "", allow_private=True)[1] == ("a",)
    assert webhooks.subscribed(("*",), "refund.created")
    assert not webhooks.subscribed(("payment_intent.captured",), "refund.created")


def test_reconciliation_results() -> None:
    move = reconciliation.Movement
    report = [
        move("pi_1", "capture", 100, "USD", "mch"),
        move("pi_2", "capture", 199, "USD", "mch"),
        move("pi_3", "capture", 300, "EUR", "mch"),
        move("pi_9", "capture", 900, "USD", "mch"),
        move("pi_4", "capture", 150, "USD", "mch"),
        move("pi_4", "capture", 250, "USD", "mch"),
    ]
    ours = [
        move("pi_1", "capture", 100, "USD", "mch"),
        move("pi_2", "capture", 200, "USD", "mch"),
        move("pi_3", "capture", 300, "USD", "mch"),
        move("pi_4", "capture", 400, "USD", "mch"),
        move("re_5", "refund", -50, "USD", "mch"),
    ]
    results = {i.reference: i.result for i in reconciliation.compare(report, ours)}
    result = reconciliation.Result
    assert results == {
        "pi_1": result.MATCHED,
        "pi_2": result.AMOUNT_MISMATCH,
        "pi_3": result.CURRENCY_MISMATCH,
        "pi_4": result.MATCHED,
        "pi_9": result.MISSING_FROM_LEDGER,
        "re_5": result.MISSING_FROM_REPORT,
    }


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=1, max_value=10**9), st.integers(min_value=0, max_value=10**6))
def test_postings_balance_per_account(amount: int, fee: int) -> None:
    transfers = [
        *postings.refund_transfers("mch", "re_X", "pi_X", amount, "USD"),
        *postings.dispute_open_transfers("mch", "dp_X", amount, fee, "USD"),
        *postings.dispute_won_transfers("mch", "dp_X", amount, "USD"),
        *postings.settlement_transfers("mch", "stl_X", amount + fee, amount, "USD"),
        postings.payout_pending_transfer("mch", "po_X", amount, "USD"),
    ]
    ids = [t.id for t in transfers]
    assert len(ids) == len(set(ids))
    for transfer in transfers:
        assert transfer.amount > 0
        assert transfer.debit_account_id != transfer.credit_account_id
    # Opening and winning a dispute leaves the merchant charged exactly the fee.
    net: dict[str, int] = {}
    for transfer in [
        *postings.dispute_open_transfers("mch", "dp_X", amount, fee, "USD"),
        *postings.dispute_won_transfers("mch", "dp_X", amount, "USD"),
    ]:
        net[transfer.debit_account_id] = net.get(transfer.debit_account_id, 0) - transfer.amount
        net[transfer.credit_account_id] = net.get(transfer.credit_account_id, 0) + transfer.amount
    assert net.get("mch:USD:available", 0) == -fee
    assert net.get("mch:USD:reserved", 0) == 0


def test_outcome_metric_counts_published_confirmations() -> None:
    def count(provider: str, outcome: str, code: str) -> float:
        value = payment_metrics.PAYMENTS.labels(
            provider=provider, outcome=outcome, decline_code=code
        )._value.get()
        return float(value)

    before = count("provider_b", "declined", "insufficient_funds")
    declined = {
        "object": {
            "provider": "provider_b",
            "last_error": {"code": "card_declined", "decline_code": "insufficient_funds"},
        }
    }
    payment_metrics.observe_events(
        [
            Event("evt_1", "payment_intent.declined", "mch", "pi_1", declined, NOW, ""),
            Event("evt_2", "refund.created", "mch", "re_1", {"object": {}}, NOW, ""),
        ]
    )
    assert count("provider_b", "declined", "insufficient_funds") == before + 1
