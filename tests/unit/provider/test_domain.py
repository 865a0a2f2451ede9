"""Pure domain: test cards, profile decisions, injection rates and seeds, the transaction rules."""

from __future__ import annotations

import collections
import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provider_sim.domain import model
from provider_sim.domain.decisions import Outcome, decide
from provider_sim.domain.injection import FailureConfig, Injected, Injector
from provider_sim.domain.model import (
    Card,
    DeclineCode,
    IllegalTransition,
    InvalidRequest,
    Status,
    Transaction,
)
from provider_sim.domain.webhooks import BACKOFF_FACTOR_MAX, backoff_seconds

NOW = datetime.datetime(2026, 5, 1, 12, tzinfo=datetime.UTC)
TODAY = NOW.date()
PROFILE_A = model.PROFILES["provider_a"]
DRAWS = 20_000
RATE_TOLERANCE = 0.015


def card(number: str, year: int = 2030) -> Card:
    return Card(number=number, exp_month=12, exp_year=year, cvc="123")


def decision_for(number: str, config: FailureConfig | None = None) -> Outcome:
    injector = Injector(PROFILE_A, config or FailureConfig(), 0.0)
    return decide(model.card_behaviour(number), card(number), injector.draw(), PROFILE_A, TODAY).outcome


@pytest.mark.parametrize(
    ("number", "outcome", "code"),
    [
        ("4242424242424242", Outcome.APPROVE, None),
        ("5555555555554444", Outcome.APPROVE, None),
        ("378282246310005", Outcome.APPROVE, None),
        ("4000000000000259", Outcome.APPROVE, None),
        ("4000000000000002", Outcome.DECLINE, DeclineCode.GENERIC_DECLINE),
        ("4000000000009995", Outcome.DECLINE, DeclineCode.INSUFFICIENT_FUNDS),
        ("4000000000000069", Outcome.DECLINE, DeclineCode.EXPIRED_CARD),
        ("4000000000000127", Outcome.DECLINE, DeclineCode.INCORRECT_CVC),
        ("4000000000000119", Outcome.ERROR, DeclineCode.PROCESSING_ERROR),
        ("4000000000007130", Outcome.TIMEOUT, None),
    ],
)
def test_test_cards_are_deterministic_whatever_the_seed(
    number: str, outcome: Outcome, code: DeclineCode | None
) -> None:
    for seed in range(50):
        injector = Injector(PROFILE_A, FailureConfig(seed=seed), 0.0)
        decision = decide(model.card_behaviour(number), card(number), injector.draw(), PROFILE_A, TODAY)
        assert decision.outcome is outcome and decision.decline_code == code


def test_every_test_card_passes_luhn_and_validation() -> None:
    for number in model.TEST_CARDS:
        card(number).validate()


def test_expired_cards_are_declined_expired_card() -> None:
    injector = Injector(PROFILE_A, FailureConfig(), 0.0)
    decision = decide(
        model.card_behaviour("4242424242424242"),
        card("4242424242424242", 2020),
        injector.draw(),
        PROFILE_A,
        TODAY,
    )
    assert decision.decline_code is DeclineCode.EXPIRED_CARD


@pytest.mark.parametrize("name", sorted(model.PROFILES))
def test_ordinary_cards_are_approved_at_the_profile_rate(name: str) -> None:
    profile = model.PROFILES[name]
    injector = Injector(profile, FailureConfig(seed=99), 0.0)
    ordinary = card("4111111111111111")
    behaviour = model.card_behaviour(ordinary.number)
    outcomes = collections.Counter(
        decide(behaviour, ordinary, injector.draw(), profile, TODAY).outcome for _ in range(DRAWS)
    )
    assert outcomes[Outcome.APPROVE] / DRAWS == pytest.approx(profile.approval_rate, abs=RATE_TOLERANCE)


def test_injected_rates_are_observed_shares_of_all_calls() -> None:
    config = FailureConfig(decline_rate=0.1, error_rate=0.07, timeout_rate=0.03, seed=5)
    injector = Injector(PROFILE_A, config, 0.0)
    tally = collections.Counter(injector.draw().injected for _ in range(DRAWS))
    assert tally[Injected.DECLINE] / DRAWS == pytest.approx(0.1, abs=RATE_TOLERANCE)
    assert tally[Injected.ERROR] / DRAWS == pytest.approx(0.07, abs=RATE_TOLERANCE)
    assert tally[Injected.TIMEOUT] / DRAWS == pytest.approx(0.03, abs=RATE_TOLERANCE)


def test_same_seed_same_sequence_and_declines_never_injected_where_they_make_no_sense() -> None:
    config = FailureConfig(decline_rate=0.5, error_rate=0.1, seed=42)
    first = [Injector(PROFILE_A, config, 1.0).draw() for _ in range(1)]
    a, b = Injector(PROFILE_A, config, 1.0), Injector(PROFILE_A, config, 1.0)
    assert [a.draw() for _ in range(500)] == [b.draw() for _ in range(500)]
    assert first[0] == Injector(PROFILE_A, config, 1.0).draw()
    no_declines = Injector(PROFILE_A, config, 1.0)
    assert all(no_declines.draw(may_decline=False).injected is not Injected.DECLINE for _ in range(500))


@settings(max_examples=50, deadline=None)
@given(
    scale=st.floats(min_value=0, max_value=2),
    low=st.integers(min_value=0, max_value=1000),
    extra=st.integers(min_value=0, max_value=1000),
)
def test_latency_stays_within_profile_plus_injected_range_times_scale(
    scale: float, low: int, extra: int
) -> None:
    config = FailureConfig(latency_ms_min=low, latency_ms_max=low + extra)
    injector = Injector(PROFILE_A, config, scale)
    for _ in range(20):
        seconds = injector.draw().latency_seconds
        assert (PROFILE_A.latency_ms_min + low) * scale / 1000 - 1e-9 <= seconds
        assert seconds <= (PROFILE_A.latency_ms_max + low + extra) * scale / 1000 + 1e-9


@pytest.mark.parametrize(
    "config",
    [
        FailureConfig(decline_rate=-0.1),
        FailureConfig(error_rate=float("nan")),
        FailureConfig(decline_rate=0.5, error_rate=0.3, timeout_rate=0.3),
        FailureConfig(latency_ms_min=10, latency_ms_max=5),
        FailureConfig(latency_ms_max=600_000),
        FailureConfig(duplicate_webhook_rate=2),
    ],
)
def test_invalid_failure_configs_are_refused(config: FailureConfig) -> None:
    with pytest.raises(InvalidRequest) as caught:
        config.validate()
    assert caught.value.field and caught.value.field.startswith("config.")


def transaction(amount: int = 1_000) -> Transaction:
    return Transaction(
        id="txn_1",
        provider="provider_a",
        reference="pi_1",
        merchant_id="mch_1",
        status=Status.AUTHORIZED,
        amount=amount,
        currency="USD",
        last4="4242",
        card_fingerprint="f",
        created_at=NOW,
        updated_at=NOW,
    )


def test_capture_void_refund_rules() -> None:
    txn = transaction()
    with pytest.raises(IllegalTransition, match="exceeds"):
        txn.capture(1_001, NOW, multi_capture=False)
    assert txn.capture(0, NOW, multi_capture=False) == 1_000
    with pytest.raises(IllegalTransition) as caught:
        txn.void(NOW)
    assert caught.value.reason == "TRANSACTION_ALREADY_CAPTURED"
    txn.refund(400, NOW)
    with pytest.raises(IllegalTransition) as caught:
        txn.refund(601, NOW)
    assert caught.value.reason == "REFUND_EXCEEDS_CAPTURED"
    txn.refund(600, NOW)
    assert txn.status is Status.REFUNDED
    with pytest.raises(IllegalTransition):
        txn.open_chargeback(0, NOW)


@settings(max_examples=60, deadline=None)
@given(
    amount=st.integers(min_value=1, max_value=10_000),
    operations=st.lists(
        st.tuples(st.sampled_from(["capture", "refund", "void", "chargeback"]), st.integers(0, 12_000)),
        max_size=12,
    ),
    multi=st.booleans(),
)
def test_money_invariants_hold_under_any_sequence(
    amount: int, operations: list[tuple[str, int]], multi: bool
) -> None:
    txn = transaction(amount)
    for operation, value in operations:
        try:
            if operation == "capture":
                txn.capture(value, NOW, multi_capture=multi)
            elif operation == "refund":
                txn.refund(value, NOW)
            elif operation == "void":
                txn.void(NOW)
            else:
                txn.open_chargeback(value, NOW)
        except model.DomainError:
            pass
        assert 0 <= txn.amount_refunded <= txn.amount_captured <= txn.amount
        if txn.status is Status.VOIDED:
            assert txn.amount_captured == 0


def test_card_repr_never_shows_the_number_or_cvc() -> None:
    text = repr(card("4242424242424242"))
    assert "4242424242424242" not in text and "123" not in text and "4242" in text


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_seconds(n, 0.5) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert backoff_seconds(50, 1.0) == BACKOFF_FACTOR_MAX
