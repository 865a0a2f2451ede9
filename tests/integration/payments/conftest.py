"""Fixtures of the payments integration suite: one real stack per test module and backend.

Starting the four services costs a few seconds, so each module shares one stack per backend
(SQLite, then PostgreSQL) and every test creates its own merchant (random names and ids), which
keeps tests independent. After every module the ledger's invariants must hold.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from clearhouse.payments.v1 import payment_intents_pb2, tokens_pb2

from tests.support.stack import Stack, running_stack

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]

PI = payment_intents_pb2.PaymentIntent
APPROVED_VISA = "4242424242424242"
APPROVED_MASTERCARD = "5555555555554444"
APPROVED_AMEX = "378282246310005"
DECLINE_GENERIC = "4000000000000002"
DECLINE_INSUFFICIENT_FUNDS = "4000000000009995"
DECLINE_EXPIRED = "4000000000000069"
DECLINE_INCORRECT_CVC = "4000000000000127"
PROCESSING_ERROR = "4000000000000119"
TIMEOUT = "4000000000007130"


def card(number: str = APPROVED_VISA, cvc: str = "123") -> payment_intents_pb2.PaymentMethod:
    """A payment method with a card expiring in 2030."""
    return payment_intents_pb2.PaymentMethod(
        card=tokens_pb2.CardDetails(number=number, exp_month=12, exp_year=2030, cvc=cvc)
    )


def token(token_id: str) -> payment_intents_pb2.PaymentMethod:
    """A payment method naming a token."""
    return payment_intents_pb2.PaymentMethod(token=token_id)


def key() -> str:
    """A fresh idempotency key."""
    return f"idem-{secrets.token_hex(8)}"


async def stack_for(
    backend: str, tmp_path_factory: pytest.TempPathFactory, **kwargs: Any
) -> AsyncIterator[Stack]:
    """A running stack on `backend`; the ledger must be consistent at the end."""
    var_dir = tmp_path_factory.mktemp("stack") / "var"
    async with running_stack(var_dir, backend=backend, **kwargs) as stack:
        yield stack
        report = await stack.check_ledger()
        assert report.ok, list(report.violations)


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BACKENDS)
async def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """The default stack of a module: in-process cache, default timeouts."""
    async for running in stack_for(request.param, tmp_path_factory):
        yield running
