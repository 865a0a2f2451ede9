"""Risk rules at their documented thresholds (docs/payments.md), counters in a real Redis."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from clearhouse.payments.v1 import merchants_pb2, payment_intents_pb2, risk_pb2, tokens_pb2
from clearhouse.provider.v1 import provider_pb2

from tests.integration.payments.conftest import (
    APPROVED_AMEX,
    APPROVED_MASTERCARD,
    APPROVED_VISA,
    DECLINE_GENERIC,
    PI,
    card,
    stack_for,
)
from tests.support.infra import require_redis
from tests.support.stack import Stack

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.redis]
P = payment_intents_pb2
R = risk_pb2.RiskAssessment
CHARGEBACK_CARD = "4000000000000259"


@pytest_asyncio.fixture(
    scope="module",
    loop_scope="module",
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
async def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    redis_url = await require_redis()
    async for running in stack_for(request.param, tmp_path_factory, redis_url=redis_url):
        yield running


def random_ip() -> str:
    return f"198.51.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"


async def fresh_card(stack: Stack, secret: str, number: str) -> str:
    """Clear the card's windows (other tests of the module use the same test cards)."""
    created = await stack.tokens.CreateToken(
        tokens_pb2.CreateTokenRequest(
            card=tokens_pb2.CardDetails(number=number, exp_month=12, exp_year=2030)
        ),
        metadata=stack.md(secret),
    )
    assert stack.payments is not None
    cache = stack.payments.definition.extras["cache"]
    for window in ("card", "declines"):
        await cache.delete(f"risk:{window}:{created.token.fingerprint}")
    return created.token.fingerprint


async def confirm(
    stack: Stack, secret: str, number: str, *, amount: int = 1_000, ip: str = "", billing: str = ""
) -> payment_intents_pb2.PaymentIntent:
    intent = (
        await stack.intents.CreatePaymentIntent(
            P.CreatePaymentIntentRequest(amount=amount, currency="USD", capture_method=PI.MANUAL),
            metadata=stack.md(secret),
        )
    ).payment_intent
    return (
        await stack.intents.ConfirmPaymentIntent(
            P.ConfirmPaymentIntentRequest(
                id=intent.id, payment_method=card(number), ip_address=ip, billing_country=billing
            ),
            metadata=stack.md(secret),
        )
    ).payment_intent


async def assess(
    stack: Stack, secret: str, number: str, *, amount: int = 1_000, ip: str = "", billing: str = ""
) -> risk_pb2.RiskAssessment:
    response = await stack.risk.AssessRisk(
        risk_pb2.AssessRiskRequest(
            amount=amount, currency="USD", payment_method=card(number), ip_address=ip, billing_country=billing
        ),
        metadata=stack.md(secret),
    )
    return response.assessment


def factors(assessment: risk_pb2.RiskAssessment) -> dict[str, int]:
    return {f.code: f.score for f in assessment.factors}


async def provider_authorizations(stack: Stack) -> int:
    state = await stack.provider_stub.GetState(provider_pb2.GetStateRequest())
    return sum(p.counters.authorizations for p in state.providers)


async def test_card_velocity_reviews_above_five_and_blocks_above_ten(stack: Stack) -> None:
    merchant = await stack.new_merchant()
    await fresh_card(stack, merchant.secret, APPROVED_VISA)
    for _ in range(5):
        intent = await confirm(stack, merchant.secret, APPROVED_VISA)
        assert intent.status == PI.AUTHORIZED and intent.risk_score == 0
    sixth = await assess(stack, merchant.secret, APPROVED_VISA)
    assert (sixth.score, sixth.level, sixth.decision) == (50, R.MEDIUM, R.REVIEW)
    assert factors(sixth) == {"card_velocity": 50}
    # Assessing records nothing: the same answer twice.
    assert (await assess(stack, merchant.secret, APPROVED_VISA)).score == 50
    for _ in range(5):
        reviewed = await confirm(stack, merchant.secret, APPROVED_VISA)
        assert reviewed.status == PI.AUTHORIZED and reviewed.risk_score == 50
    before = await provider_authorizations(stack)
    blocked = await confirm(stack, merchant.secret, APPROVED_VISA)
    assert blocked.status == PI.DECLINED and blocked.risk_score == 80
    assert blocked.last_error.code == "fraud_suspected" and blocked.last_error.provider == ""
    assert await provider_authorizations(stack) == before  # no provider was called


async def test_ip_velocity_scores_above_twenty_attempts(stack: Stack) -> None:
    merchant = await stack.new_merchant()
    ip = random_ip()
    cards = [APPROVED_VISA, APPROVED_MASTERCARD, APPROVED_AMEX, CHARGEBACK_CARD]
    for number in cards:
        await fresh_card(stack, merchant.secret, number)
    for attempt in range(20):
        intent = await confirm(stack, merchant.secret, cards[attempt % 4], ip=ip)
        assert intent.risk_score == 0, attempt
    await fresh_card(stack, merchant.secret, APPROVED_VISA)
    assessment = await assess(stack, merchant.secret, APPROVED_VISA, ip=ip)
    assert factors(assessment) == {"ip_velocity": 40} and assessment.decision == R.ALLOW
    scored = await confirm(stack, merchant.secret, APPROVED_VISA, ip=ip)
    assert scored.risk_score == 40
    # Another address is unaffected.
    assert factors(await assess(stack, merchant.secret, APPROVED_VISA, ip=random_ip())) == {}


async def test_amount_above_the_merchant_threshold(stack: Stack) -> None:
    merchant = await stack.new_merchant(risk_settings=merchants_pb2.RiskSettings(amount_threshold=5_000))
    await fresh_card(stack, merchant.secret, APPROVED_MASTERCARD)
    at = await assess(stack, merchant.secret, APPROVED_MASTERCARD, amount=5_000)
    above = await assess(stack, merchant.secret, APPROVED_MASTERCARD, amount=5_001)
    far = await assess(stack, merchant.secret, APPROVED_MASTERCARD, amount=25_001)
    assert at.score == 0 and at.level == R.LOW and at.decision == R.ALLOW
    assert factors(above) == {"amount_above_threshold": 30} and above.decision == R.ALLOW
    assert factors(far) == {"amount_above_threshold": 60} and (far.level, far.decision) == (
        R.MEDIUM,
        R.REVIEW,
    )
    intent = await confirm(stack, merchant.secret, APPROVED_MASTERCARD, amount=25_001)
    assert intent.risk_score == 60 and intent.status == PI.AUTHORIZED
    # Per-merchant thresholds: the default merchant does not score the same amount.
    default = await stack.new_merchant()
    assert (await assess(stack, default.secret, APPROVED_MASTERCARD, amount=25_001)).score == 0


async def test_country_mismatch_and_repeated_declines(stack: Stack) -> None:
    merchant = await stack.new_merchant()
    german = "4000002760000008"
    assert factors(await assess(stack, merchant.secret, german, billing="US")) == {"country_mismatch": 20}
    assert factors(await assess(stack, merchant.secret, german, billing="DE")) == {}
    await fresh_card(stack, merchant.secret, DECLINE_GENERIC)
    for _ in range(3):
        assert (await confirm(stack, merchant.secret, DECLINE_GENERIC)).status == PI.DECLINED
    repeated = await assess(stack, merchant.secret, DECLINE_GENERIC)
    assert factors(repeated) == {"repeated_declines": 30}
