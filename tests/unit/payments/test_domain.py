"""Pure domain of the payments service: state machine, routing, breakers, risk, chart, declines."""

from __future__ import annotations

import dataclasses
import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payments_svc.domain import breaker, ledger, payments, risk, routing
from payments_svc.domain.errors import Forbidden, IllegalTransition, InvalidRequest
from payments_svc.domain.merchants import Permission, Pricing, RiskSettings, Role, require
from payments_svc.domain.payments import PaymentIntent, Status

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def intent(status: Status = Status.CREATED, **fields: object) -> PaymentIntent:
    return dataclasses.replace(
        PaymentIntent(
            id="pi_01JD0000000000000000000000",
            merchant_id="mch_01JD0000000000000000000000",
            status=status,
            amount=2_500,
            currency="USD",
            capture_method=payments.CaptureMethod.MANUAL,
            created_at=NOW,
            updated_at=NOW,
        ),
        **fields,  # type: ignore[arg-type]
    )


# State machine --------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(list(Status)), st.sampled_from(list(Status)))
def test_transition_follows_the_table_exactly(source: Status, target: Status) -> None:
    if target in payments.TRANSITIONS[source]:
        moved = payments.transition(intent(source), target, NOW + datetime.timedelta(seconds=1))
        assert moved.status is target and moved.updated_at > NOW
    else:
        with pytest.raises(IllegalTransition) as caught:
            payments.transition(intent(source), target, NOW)
        assert caught.value.reason == "ILLEGAL_TRANSITION"


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(list(Status)), max_size=12))
def test_any_walk_through_the_table_never_leaves_a_terminal_state(walk: list[Status]) -> None:
    current = intent()
    for target in walk:
        if target in payments.TRANSITIONS[current.status]:
            current = payments.transition(current, target, NOW)
    if current.status in {Status.CANCELED, Status.REFUNDED}:
        assert not payments.TRANSITIONS[current.status]


def test_documented_paths_are_allowed() -> None:
    for path in (
        [Status.AUTHORIZED, Status.CAPTURED, Status.SETTLED],
        [Status.DECLINED, Status.DECLINED, Status.AUTHORIZED, Status.CANCELED],
        [Status.PROCESSING, Status.CAPTURED, Status.DISPUTED],
    ):
        current = intent()
        for target in path:
            current = payments.transition(current, target, NOW)
        assert current.status is path[-1]


@pytest.mark.parametrize("status", [s for s in Status if s not in payments.CONFIRMABLE])
def test_only_created_and_declined_are_confirmable(status: Status) -> None:
    with pytest.raises(IllegalTransition) as caught:
        payments.check_confirmable(intent(status))
    assert caught.value.reason == "PAYMENT_NOT_CONFIRMABLE"


def test_capture_amounts() -> None:
    authorized = intent(Status.AUTHORIZED, amount_capturable=2_500)
    assert payments.capture_amount(authorized, None) == 2_500
    assert payments.capture_amount(authorized, 1) == 1
    assert payments.capture_amount(authorized, 2_500) == 2_500
    with pytest.raises(InvalidRequest) as too_much:
        payments.capture_amount(authorized, 2_501)
    assert (too_much.value.reason, too_much.value.field) == (
        "AMOUNT_TO_CAPTURE_TOO_LARGE",
        "amount_to_capture",
    )
    with pytest.raises(InvalidRequest):
        payments.capture_amount(authorized, 0)
    with pytest.raises(IllegalTransition) as wrong_state:
        payments.capture_amount(intent(Status.CAPTURED), None)
    assert wrong_state.value.reason == "PAYMENT_NOT_CAPTURABLE"


def test_cancelable_states() -> None:
    for status in (Status.CREATED, Status.DECLINED, Status.AUTHORIZED):
        payments.check_cancelable(intent(status))
    for status in (Status.PROCESSING, Status.CAPTURED, Status.CANCELED, Status.SETTLED):
        with pytest.raises(IllegalTransition):
            payments.check_cancelable(intent(status))


def test_provider_reference_numbers_reconfirmations() -> None:
    assert payments.provider_reference("pi_X", 1) == "pi_X"
    assert payments.provider_reference("pi_X", 2) == "pi_X:2"


@pytest.mark.parametrize(
    ("provider_code", "code", "decline_code"),
    [
        ("generic_decline", "card_declined", "generic_decline"),
        ("card_declined", "card_declined", "generic_decline"),
        ("insufficient_funds", "card_declined", "insufficient_funds"),
        ("do_not_honor", "card_declined", "do_not_honor"),
        ("fraudulent", "card_declined", "fraudulent"),
        ("expired_card", "expired_card", ""),
        ("incorrect_cvc", "incorrect_cvc", ""),
        ("something_new", "card_declined", "generic_decline"),
    ],
)
def test_decline_mapping(provider_code: str, code: str, decline_code: str) -> None:
    error = payments.decline_error(provider_code, "provider_b")
    assert (error.code, error.decline_code, error.provider) == (code, decline_code, "provider_b")
    assert error.message


def test_request_validation() -> None:
    assert payments.validate_amount(99_999_999_999) == 99_999_999_999
    for bad in (0, -1, 100_000_000_000):
        with pytest.raises(InvalidRequest):
            payments.validate_amount(bad)
    with pytest.raises(InvalidRequest):
        payments.validate_metadata({f"k{i}": "v" for i in range(51)})
    with pytest.raises(InvalidRequest):
        payments.validate_metadata({"k" * 41: "v"})
    with pytest.raises(InvalidRequest):
        payments.validate_provider("provider_c")
    with pytest.raises(InvalidRequest):
        payments.validate_description("x" * 1_001)


# Roles ----------------------------------------------------------------------------------------


def test_roles() -> None:
    require(Role.VIEWER, Permission.READ)
    require(Role.OPERATOR, Permission.TRANSACT)
    require(Role.ADMIN, Permission.MANAGE_KEYS)
    for role, permission in ((Role.VIEWER, Permission.TRANSACT), (Role.OPERATOR, Permission.MANAGE_KEYS)):
        with pytest.raises(Forbidden):
            require(role, permission)


def test_pricing_fee() -> None:
    assert Pricing().fee(2_000) == 88
    assert Pricing().fee(10) == 10  # never more than the amount
    assert Pricing(0, 0).fee(5_000) == 0
    with pytest.raises(InvalidRequest):
        Pricing(10_001, 0).validate()
    with pytest.raises(InvalidRequest):
        RiskSettings(review_score=90, block_score=80).validate()


# Routing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preferred", "country", "amount", "first"),
    [
        ("", "DE", 100, ("provider_b", routing.Rule.COUNTRY)),
        ("", "us", 50_000, ("provider_a", routing.Rule.COUNTRY)),
        ("", "IT", 10_000, ("provider_b", routing.Rule.AMOUNT)),
        ("", "IT", 9_999, ("provider_a", routing.Rule.DEFAULT)),
        ("", "", 100, ("provider_a", routing.Rule.DEFAULT)),
        ("provider_b", "US", 100, ("provider_b", routing.Rule.PREFERRED)),
    ],
)
def test_routing_first_candidate(
    preferred: str, country: str, amount: int, first: tuple[str, routing.Rule]
) -> None:
    ordered = routing.candidates(preferred, country, amount)
    assert (ordered[0].provider, ordered[0].rule) == first
    assert {c.provider for c in ordered} == {"provider_a", "provider_b"}


def test_routing_after_an_unavailable_preferred_provider_falls_back_to_the_rules() -> None:
    ordered = routing.candidates("provider_a", "DE", 100)
    assert [(c.provider, c.rule) for c in ordered] == [
        ("provider_a", routing.Rule.PREFERRED),
        ("provider_b", routing.Rule.COUNTRY),
    ]
    assert [c.rule for c in routing.candidates("", "DE", 100)] == [
        routing.Rule.COUNTRY,
        routing.Rule.FAILOVER,
    ]


# Breakers -------------------------------------------------------------------------------------


def test_breaker_states() -> None:
    config = breaker.BreakerConfig(failure_threshold=5, recovery_timeout_seconds=30, half_open_max_calls=3)
    closed = breaker.BreakerSnapshot("provider_a", 4, None)
    assert breaker.state(closed, config, 1_000.0) is breaker.State.CLOSED
    assert not breaker.should_open(4, config) and breaker.should_open(5, config)
    opened = breaker.BreakerSnapshot("provider_a", 5, 1_000.0)
    assert breaker.state(opened, config, 1_029.9) is breaker.State.OPEN
    assert breaker.state(opened, config, 1_030.0) is breaker.State.HALF_OPEN


# Risk -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signals", "score", "decision"),
    [
        (risk.Signals(amount=100, card_attempts=5), 0, risk.Decision.ALLOW),
        (risk.Signals(amount=100, card_attempts=6), 50, risk.Decision.REVIEW),
        (risk.Signals(amount=100, card_attempts=11), 80, risk.Decision.BLOCK),
        (risk.Signals(amount=100, ip_attempts=20), 0, risk.Decision.ALLOW),
        (risk.Signals(amount=100, ip_attempts=21), 40, risk.Decision.ALLOW),
        (risk.Signals(amount=100, ip_attempts=51), 80, risk.Decision.BLOCK),
        (risk.Signals(amount=100_000), 0, risk.Decision.ALLOW),
        (risk.Signals(amount=100_001), 30, risk.Decision.ALLOW),
        (risk.Signals(amount=500_001), 60, risk.Decision.REVIEW),
        (risk.Signals(amount=100, card_country="DE", billing_country="us"), 20, risk.Decision.ALLOW),
        (risk.Signals(amount=100, card_country="DE", billing_country="de"), 0, risk.Decision.ALLOW),
        (risk.Signals(amount=100, card_declines=3), 30, risk.Decision.ALLOW),
        (risk.Signals(amount=100, card_declines=6), 60, risk.Decision.REVIEW),
        (
            risk.Signals(amount=500_001, card_attempts=11, ip_attempts=51, card_declines=6),
            100,
            risk.Decision.BLOCK,
        ),
    ],
)
def test_risk_rules_at_their_thresholds(signals: risk.Signals, score: int, decision: risk.Decision) -> None:
    assessment = risk.assess(signals, RiskSettings())
    assert (assessment.score, assessment.decision) == (score, decision)
    assert sum(f.score for f in assessment.factors) >= assessment.score


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 10**11),
    st.integers(0, 100),
    st.integers(0, 100),
    st.integers(0, 20),
    st.integers(1, 100),
    st.integers(1, 100),
)
def test_risk_score_is_bounded_and_monotonic_in_levels(
    amount: int, cards: int, ips: int, declines: int, review: int, block: int
) -> None:
    review, block = min(review, block), max(review, block)
    settings_ = RiskSettings(amount_threshold=100_000, review_score=review, block_score=block)
    assessment = risk.assess(risk.Signals(amount, cards, ips, declines), settings_)
    assert 0 <= assessment.score <= 100
    if assessment.score >= block:
        assert assessment.decision is risk.Decision.BLOCK and assessment.level is risk.Level.HIGH
    elif assessment.score >= review:
        assert assessment.decision is risk.Decision.REVIEW
    else:
        assert assessment.decision is risk.Decision.ALLOW and assessment.level is risk.Level.LOW


# Ledger chart -----------------------------------------------------------------------------------


def test_chart_and_transfer_ids_are_deterministic() -> None:
    specs = ledger.chart("mch_1", "USD")
    ids = {s.id for s in specs}
    assert "mch_1:USD:pending" in ids and "platform:USD:fee_revenue" in ids and len(ids) == len(specs) == 6
    auth = ledger.authorization_transfer("mch_1", "pi_1", 2_500, "USD")
    assert (auth.id, auth.pending, auth.debit_account_id, auth.credit_account_id) == (
        "pi_1:auth",
        True,
        "mch_1:USD:provider_receivable",
        "mch_1:USD:pending",
    )
    post, fee = ledger.capture_transfers("mch_1", "pi_1", 2_000, 88, "USD")
    assert (post.id, post.pending_id, post.post_pending, post.linked) == (
        "pi_1:capture",
        "pi_1:auth",
        True,
        True,
    )
    assert (fee.id, fee.amount, fee.credit_account_id) == ("pi_1:fee", 88, "platform:USD:fee_revenue")
    (only,) = ledger.capture_transfers("mch_1", "pi_1", 2_000, 0, "USD")
    assert not only.linked
    void = ledger.void_transfer("pi_1", 2_500, "USD")
    assert (void.id, void.void_pending, void.pending_id) == ("pi_1:void", True, "pi_1:auth")
