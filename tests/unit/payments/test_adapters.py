"""Payments adapters and helpers with in-process fakes: the breaker board, error storage."""

from __future__ import annotations

import grpc

from chassis import errors
from chassis.cache import MemoryCache
from payments_svc.adapters.circuit_board import CircuitBoard
from payments_svc.domain.breaker import BreakerConfig, State
from payments_svc.domain.cards import Card
from payments_svc.service_layer.errors import decode_error, encode_error


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def test_board_opens_half_opens_with_limited_trials_and_closes() -> None:
    clock = Clock()
    board = CircuitBoard(MemoryCache(), BreakerConfig(3, 10.0, 2), clock)
    for _ in range(2):
        assert await board.allow("provider_a") is State.CLOSED
        await board.record_failure("provider_a")
    await board.record_success("provider_a", State.CLOSED)  # a success resets the count
    assert (await board.snapshot("provider_a"))[0].consecutive_failures == 0
    for _ in range(3):
        await board.record_failure("provider_a")
    assert (await board.snapshot("provider_a"))[1] is State.OPEN
    assert await board.allow("provider_a") is None
    clock.now += 10.0
    assert (await board.snapshot("provider_a"))[1] is State.HALF_OPEN
    assert await board.allow("provider_a") is State.HALF_OPEN
    assert await board.allow("provider_a") is State.HALF_OPEN
    assert await board.allow("provider_a") is None  # only two trial calls
    await board.record_failure("provider_a")  # a failed trial re-opens for a full timeout
    assert (await board.snapshot("provider_a"))[1] is State.OPEN
    clock.now += 10.0
    assert await board.allow("provider_a") is State.HALF_OPEN  # a fresh set of trials
    await board.record_success("provider_a", State.HALF_OPEN)
    assert await board.snapshot("provider_a") == ((await board.snapshot("provider_a"))[0], State.CLOSED)
    assert await board.allow("provider_b") is State.CLOSED  # breakers are per provider


def test_stored_errors_replay_identically() -> None:
    original = errors.FailedPrecondition(
        "not capturable",
        reason="PAYMENT_NOT_CAPTURABLE",
        field_violations=[errors.FieldViolation("amount_to_capture", "too large")],
        metadata={"status": "CANCELED"},
    )
    again = decode_error(encode_error(original))
    assert type(again) is errors.FailedPrecondition and again.code is grpc.StatusCode.FAILED_PRECONDITION
    assert (again.reason, again.message, again.field_violations, again.metadata) == (
        original.reason,
        original.message,
        original.field_violations,
        original.metadata,
    )


def test_card_repr_never_shows_the_number_or_cvc() -> None:
    card = Card("4242424242424242", 12, 2030, "987")
    assert "4242424242424242" not in repr(card) and "987" not in str(card)
    assert "4242" in repr(card)
