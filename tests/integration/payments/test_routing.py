"""Routing rules and circuit breakers against the real provider simulator.

Breakers live in the shared cache: the in-process one, and a real Redis (where a second
payments replica must see the same board).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from clearhouse.payments.v1 import admin_pb2, payment_intents_pb2

from chassis import service
from payments_svc.bootstrap import build as build_payments
from tests.integration.payments.conftest import PI, card, stack_for
from tests.support.infra import require_redis
from tests.support.stack import Stack, tools_channel

pytestmark = pytest.mark.asyncio(loop_scope="module")
P = payment_intents_pb2
STATE = admin_pb2.CircuitBreaker.State
RECOVERY_SECONDS = 2.0
POLL_SECONDS_MAX = 10.0


def country_card(iso_numeric: str) -> str:
    """A Luhn-valid test Visa the vault places in the country with this ISO 3166 numeric code."""
    body = f"400000{iso_numeric}000000"
    total = 0
    for index, char in enumerate(reversed(body)):
        doubled = int(char) * (2 if index % 2 == 0 else 1)
        total += doubled - 9 if doubled > 9 else doubled
    return body + str((10 - total % 10) % 10)


@pytest_asyncio.fixture(
    scope="module",
    loop_scope="module",
    params=[
        pytest.param(("sqlite", False), id="sqlite-memory"),
        pytest.param(("sqlite", True), id="sqlite-redis", marks=pytest.mark.redis),
        pytest.param(
            ("postgres", True), id="postgres-redis", marks=[pytest.mark.postgres, pytest.mark.redis]
        ),
    ],
)
async def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    backend, with_redis = request.param
    redis_url = await require_redis() if with_redis else None
    overrides = {"breaker_recovery_timeout_seconds": RECOVERY_SECONDS, "breaker_failure_threshold": 5}
    async for running in stack_for(
        backend, tmp_path_factory, redis_url=redis_url, payments_overrides=overrides
    ):
        yield running


async def confirm(
    stack: Stack, secret: str, number: str, amount: int = 1_000, preferred: str = ""
) -> payment_intents_pb2.PaymentIntent:
    intent = (
        await stack.intents.CreatePaymentIntent(
            P.CreatePaymentIntentRequest(
                amount=amount, currency="USD", capture_method=PI.MANUAL, preferred_provider=preferred
            ),
            metadata=stack.md(secret),
        )
    ).payment_intent
    confirmed = (
        await stack.intents.ConfirmPaymentIntent(
            P.ConfirmPaymentIntentRequest(id=intent.id, payment_method=card(number)),
            metadata=stack.md(secret),
        )
    ).payment_intent
    await forget_card(stack, confirmed.payment_method.fingerprint)
    return confirmed


async def forget_card(stack: Stack, fingerprint: str) -> None:
    """Clear the risk windows of a card: these tests reuse the few deterministic test cards far
    more often than the velocity rules allow, and risk is not what they test."""
    assert stack.payments is not None
    cache = stack.payments.definition.extras["cache"]
    for window in ("card", "declines"):
        await cache.delete(f"risk:{window}:{fingerprint}")


async def board(
    stack: Stack, metadata: tuple[tuple[str, str], ...] | None = None
) -> dict[str, admin_pb2.CircuitBreaker]:
    response = await stack.admin.GetProviderHealth(
        admin_pb2.GetProviderHealthRequest(), metadata=metadata or stack.admin_md()
    )
    return {b.provider: b for b in response.providers}


async def inject(stack: Stack, provider: str, error_rate: float) -> None:
    response = await stack.admin.ConfigureProviderFailures(
        admin_pb2.ConfigureProviderFailuresRequest(provider=provider, error_rate=error_rate, seed=7),
        metadata=stack.admin_md(),
    )
    assert response.config.error_rate == error_rate


@pytest.mark.parametrize(
    ("number", "amount", "preferred", "expected"),
    [
        (country_card("276"), 1_000, "", "provider_b"),  # DE → B
        (country_card("250"), 1_000, "", "provider_b"),  # FR → B
        (country_card("826"), 1_000, "", "provider_b"),  # GB → B
        (country_card("392"), 1_000, "", "provider_b"),  # JP → B
        (country_card("124"), 50_000, "", "provider_a"),  # CA → A, whatever the amount
        (country_card("036"), 1_000, "", "provider_a"),  # AU → A
        ("4242424242424242", 50_000, "", "provider_a"),  # US → A, whatever the amount
        (country_card("380"), 10_000, "", "provider_b"),  # IT: no country rule, ≥ 10,000 → B
        (country_card("380"), 9_999, "", "provider_a"),  # IT, below the threshold → default A
        ("4242424242424242", 1_000, "provider_b", "provider_b"),  # preferred wins over the country
        (country_card("276"), 1_000, "provider_a", "provider_a"),
    ],
)
async def test_each_rule_picks_the_documented_provider(
    stack: Stack, number: str, amount: int, preferred: str, expected: str
) -> None:
    merchant = await stack.new_merchant()
    intent = await confirm(stack, merchant.secret, number, amount, preferred)
    # Ordinary test cards are approved at the profile's rate; the route is recorded either way.
    assert intent.status in {PI.AUTHORIZED, PI.DECLINED}
    assert intent.provider == expected


async def test_breaker_opens_after_threshold_fails_over_and_half_open_trials_close_it(stack: Stack) -> None:
    merchant = await stack.new_merchant()
    assert (await board(stack))["provider_a"].state == STATE.CLOSED
    await inject(stack, "provider_a", 1.0)
    try:
        for attempt in range(5):
            failed = await confirm(stack, merchant.secret, "4242424242424242")
            assert failed.status == PI.DECLINED and failed.last_error.code == "processing_error"
            assert failed.provider == "provider_a"
            expected = STATE.OPEN if attempt == 4 else STATE.CLOSED
            row = (await board(stack))["provider_a"]
            assert row.state == expected and row.consecutive_failures == attempt + 1
        opened = (await board(stack))["provider_a"]
        assert (
            opened.failure_threshold == 5 and opened.HasField("opened_at") and opened.half_open_max_calls == 3
        )

        # Open: traffic for A fails over to B.
        moved = await confirm(stack, merchant.secret, "4242424242424242")
        assert moved.status == PI.AUTHORIZED and moved.provider == "provider_b"
    finally:
        await inject(stack, "provider_a", 0.0)

    # After the recovery timeout the breaker is half-open and lets trial calls through to A.
    deadline = time.monotonic() + POLL_SECONDS_MAX
    while (await board(stack))["provider_a"].state != STATE.HALF_OPEN:
        assert time.monotonic() < deadline, "the breaker never became half-open"
        await asyncio.sleep(0.05)
    trial = await confirm(stack, merchant.secret, "4242424242424242")
    assert trial.status == PI.AUTHORIZED and trial.provider == "provider_a"
    closed = (await board(stack))["provider_a"]
    assert closed.state == STATE.CLOSED and closed.consecutive_failures == 0


async def test_failed_half_open_trial_reopens_and_both_open_declines_without_a_call(stack: Stack) -> None:
    merchant = await stack.new_merchant()
    await inject(stack, "provider_a", 1.0)
    await inject(stack, "provider_b", 1.0)
    try:
        for _ in range(5):
            await confirm(stack, merchant.secret, "4242424242424242")  # A fails 5 times: open
        for _ in range(5):
            await confirm(stack, merchant.secret, "4242424242424242")  # failover to B, which fails: open
        rows = await board(stack)
        assert rows["provider_a"].state == STATE.OPEN and rows["provider_b"].state == STATE.OPEN
        nowhere = await confirm(stack, merchant.secret, "4242424242424242")
        assert nowhere.status == PI.DECLINED and nowhere.last_error.code == "provider_unavailable"
        assert nowhere.provider == ""

        deadline = time.monotonic() + POLL_SECONDS_MAX
        while (await board(stack))["provider_a"].state != STATE.HALF_OPEN:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        reopened = await confirm(stack, merchant.secret, "4242424242424242")
        assert reopened.last_error.code == "processing_error"
        assert (await board(stack))["provider_a"].state == STATE.OPEN
    finally:
        await inject(stack, "provider_a", 0.0)
        await inject(stack, "provider_b", 0.0)
    for provider in ("provider_a", "provider_b"):
        deadline = time.monotonic() + POLL_SECONDS_MAX
        while (await board(stack))[provider].state != STATE.HALF_OPEN:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
    # Closing again: a US card tries A; a preferred-B payment trials B.
    assert (await confirm(stack, merchant.secret, "4242424242424242")).provider == "provider_a"
    assert (
        await confirm(stack, merchant.secret, "4242424242424242", preferred="provider_b")
    ).provider == "provider_b"
    rows = await board(stack)
    assert rows["provider_a"].state == STATE.CLOSED and rows["provider_b"].state == STATE.CLOSED


async def test_declines_are_answers_not_breaker_failures(stack: Stack) -> None:
    merchant = await stack.new_merchant()
    for _ in range(6):
        declined = await confirm(stack, merchant.secret, "4000000000000002")
        assert declined.status == PI.DECLINED and declined.last_error.code == "card_declined"
    row = (await board(stack))["provider_a"]
    assert row.state == STATE.CLOSED and row.consecutive_failures == 0


async def test_replicas_share_the_board_through_redis(stack: Stack) -> None:
    if stack.redis_url is None:
        pytest.skip("the in-process board is per replica by design")
    second = await service.start(stack.payments_settings(), build_payments, port=0)
    channel = tools_channel(stack.var_dir, second.address)
    try:
        from clearhouse.payments.v1 import admin_pb2_grpc

        other = admin_pb2_grpc.AdminStub(channel)
        merchant = await stack.new_merchant()
        await inject(stack, "provider_a", 1.0)
        try:
            for _ in range(5):
                await confirm(stack, merchant.secret, "4242424242424242")
        finally:
            await inject(stack, "provider_a", 0.0)
        seen = await other.GetProviderHealth(admin_pb2.GetProviderHealthRequest(), metadata=stack.admin_md())
        assert {b.provider: b.state for b in seen.providers}["provider_a"] == STATE.OPEN
    finally:
        await channel.close()
        await second.stop(0)
        deadline = time.monotonic() + POLL_SECONDS_MAX
        while (await board(stack))["provider_a"].state == STATE.OPEN:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        # Leave a closed board for whatever runs next.
        merchant = await stack.new_merchant()
        assert (await confirm(stack, merchant.secret, "4242424242424242")).provider == "provider_a"
