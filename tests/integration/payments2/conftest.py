"""Fixtures of the payments part-2 suite: one real stack per module and backend, with the real
REST gateway in front of payments (so the provider simulator's signed webhooks travel provider →
HTTP gateway → payments exactly as in production), and helpers to make captured payments.

Each test creates its own merchant; after every module the ledger's invariants must hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest
import pytest_asyncio
import uvicorn
from clearhouse.payments.v1 import (
    balance_pb2,
    disputes_pb2_grpc,
    merchants_pb2,
    payment_intents_pb2,
    payouts_pb2_grpc,
    reconciliation_pb2_grpc,
    refunds_pb2_grpc,
    settlements_pb2_grpc,
    webhook_endpoints_pb2_grpc,
)

from gateway.app import create_app
from gateway.settings import GatewaySettings
from tests.integration.payments.conftest import APPROVED_VISA, card
from tests.support.stack import Stack, running_stack

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
P = payment_intents_pb2
CHARGEBACK_CARD = "4000000000000259"
WAIT_SECONDS = 20.0
POLL_SECONDS = 0.05
# Webhook retry schedule scaled so ~3 days become ~2.4 s in all (first retry after 0.6 ms).
RETRY_SCALE = 0.00001
T = TypeVar("T")


@dataclasses.dataclass
class Env:
    """The stack, the gateway URL and part-2 stubs."""

    stack: Stack
    gateway_url: str

    @property
    def refunds(self) -> refunds_pb2_grpc.RefundsStub:
        """Payments: refunds."""
        return refunds_pb2_grpc.RefundsStub(self.stack.payments_channel)

    @property
    def disputes(self) -> disputes_pb2_grpc.DisputesStub:
        """Payments: disputes."""
        return disputes_pb2_grpc.DisputesStub(self.stack.payments_channel)

    @property
    def webhooks(self) -> webhook_endpoints_pb2_grpc.WebhookEndpointsStub:
        """Payments: webhook endpoints."""
        return webhook_endpoints_pb2_grpc.WebhookEndpointsStub(self.stack.payments_channel)

    @property
    def settlements(self) -> settlements_pb2_grpc.SettlementsStub:
        """Payments: settlements."""
        return settlements_pb2_grpc.SettlementsStub(self.stack.payments_channel)

    @property
    def payouts(self) -> payouts_pb2_grpc.PayoutsStub:
        """Payments: payouts."""
        return payouts_pb2_grpc.PayoutsStub(self.stack.payments_channel)

    @property
    def reconciliations(self) -> reconciliation_pb2_grpc.ReconciliationsStub:
        """Payments: reconciliations."""
        return reconciliation_pb2_grpc.ReconciliationsStub(self.stack.payments_channel)

    async def merchant_with_keys(
        self, *principals: str, role: int = merchants_pb2.ApiKey.OPERATOR
    ) -> tuple[str, dict[str, str]]:
        """A merchant and one key per principal ("owner" is the first ADMIN key)."""
        merchant = await self.stack.new_merchant()
        secrets_by_principal = {"owner": merchant.secret}
        for principal in principals:
            created = await self.stack.merchants.CreateApiKey(
                merchants_pb2.CreateApiKeyRequest(merchant_id=merchant.id, principal=principal, role=role),  # type: ignore[arg-type]
                metadata=self.stack.md(merchant.secret),
            )
            secrets_by_principal[principal] = created.api_key.secret
        return merchant.id, secrets_by_principal

    async def captured(
        self, secret: str, amount: int = 10_000, number: str = APPROVED_VISA, **fields: Any
    ) -> P.PaymentIntent:
        """A payment intent confirmed with automatic capture."""
        created = await self.stack.intents.CreatePaymentIntent(
            P.CreatePaymentIntentRequest(amount=amount, currency="USD", **fields),
            metadata=self.stack.md(secret),
        )
        confirmed = await self.stack.intents.ConfirmPaymentIntent(
            P.ConfirmPaymentIntentRequest(id=created.payment_intent.id, payment_method=card(number)),
            metadata=self.stack.md(secret),
        )
        assert confirmed.payment_intent.status == P.PaymentIntent.CAPTURED, confirmed.payment_intent
        return confirmed.payment_intent

    async def balance(self, secret: str) -> dict[str, int]:
        """USD pending, available and reserved."""
        response = await self.stack.balances.GetBalance(
            balance_pb2.GetBalanceRequest(), metadata=self.stack.md(secret)
        )
        found = {"available": 0, "pending": 0, "reserved": 0}
        for kind in found:
            for row in getattr(response, kind):
                if row.currency == "USD":
                    found[kind] = row.amount
        return found

    async def intent(self, secret: str, intent_id: str) -> P.PaymentIntent:
        """The intent now."""
        response = await self.stack.intents.GetPaymentIntent(
            P.GetPaymentIntentRequest(id=intent_id), metadata=self.stack.md(secret)
        )
        return response.payment_intent


async def eventually(
    probe: Callable[[], Awaitable[T | None]], what: str, timeout_seconds: float = WAIT_SECONDS
) -> T:
    """Poll `probe` until it returns something (not None/False), with a deadline."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        found = await probe()
        if found is not None and found is not False:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(POLL_SECONDS)


@contextlib.asynccontextmanager
async def serve_gateway(sock: socket.socket, var_dir: Any, backend_address: str) -> AsyncIterator[str]:
    """The real REST gateway on an already bound socket, in this event loop."""
    port = sock.getsockname()[1]
    settings = GatewaySettings(
        CLEARHOUSE_VAR_DIR=var_dir, CLEARHOUSE_ENV="test", port=port, rate_limit_enabled=False
    )
    app = create_app(settings, backend_address=backend_address)
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="on", log_config=None, access_log=False, loop="asyncio")
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await eventually(lambda: _started(server, task), "the gateway to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


async def _started(server: uvicorn.Server, task: asyncio.Task[None]) -> bool:
    if task.done():
        task.result()
    return bool(server.started)


async def env_for(
    backend: str, tmp_path_factory: pytest.TempPathFactory, **payments: Any
) -> AsyncIterator[Env]:
    """Stack + gateway on `backend`; the ledger must be consistent at the end."""
    var_dir = tmp_path_factory.mktemp("stack") / "var"
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    overrides = {
        "webhook_retry_scale": RETRY_SCALE,
        "webhook_allow_private_targets": True,
        "webhook_timeout_seconds": 2.0,
        "settlement_delay_days": 0,
        **payments,
    }
    provider = {
        "webhook_url": f"http://127.0.0.1:{port}/v1/provider_webhooks/{{provider}}",
        "webhook_retry_base_seconds": 0.05,
        "chargeback_delay_seconds": 0.1,
        "worker_poll_seconds": 0.05,
    }
    try:
        async with (
            running_stack(
                var_dir, backend=backend, payments_overrides=overrides, provider_overrides=provider
            ) as stack,
            serve_gateway(sock, var_dir, stack.payments_address) as url,
        ):
            yield Env(stack, url)
            report = await stack.check_ledger()
            assert report.ok, list(report.violations)
    finally:
        sock.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BACKENDS)
async def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    """The module's stack and gateway."""
    async for running in env_for(request.param, tmp_path_factory):
        yield running


def key() -> str:
    """A fresh idempotency key."""
    return f"idem-{secrets.token_hex(8)}"
