"""A payments process killed (SIGKILL) while the provider call is in flight.

Payments runs as a subprocess (`python -m payments_svc`, port 0, port file); the other services
run in the test process. The timeout test card makes the provider record the authorization and
then hold the answer, so the kill lands after the charge and before payments recorded it. A
restarted process must finish the payment — by a retry with the same idempotency key, or by the
idempotency completer — without a second authorization.
"""

from __future__ import annotations

import asyncio
import pathlib
import time
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from clearhouse.ledger.v1 import ledger_pb2
from clearhouse.payments.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    merchants_pb2,
    merchants_pb2_grpc,
    payment_intents_pb2,
    payment_intents_pb2_grpc,
)
from clearhouse.provider.v1 import provider_pb2

from chassis import errors
from tests.integration.payments.conftest import BACKENDS, PI, TIMEOUT, card, key
from tests.support.stack import Stack, payments_process, running_stack, tools_channel, wait_for_port

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.e2e, pytest.mark.slow]
P = payment_intents_pb2
# The provider holds the timeout card's answer this long: far past the kill.
PROVIDER_TIMEOUT_SECONDS = "20"
# The client's deadline: also the idempotency key's lock (plus a margin) after the crash.
CLIENT_DEADLINE_SECONDS = 4.0
POLL_SECONDS_MAX = 30.0


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BACKENDS)
async def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    var_dir = tmp_path_factory.mktemp("kill") / "var"
    async with running_stack(var_dir, backend=request.param, start_payments=False) as running:
        yield running
        report = await running.check_ledger()
        assert report.ok, list(report.violations)


class Payments:
    """One payments subprocess and a channel to it."""

    def __init__(self, stack: Stack, log_path: pathlib.Path) -> None:
        self.env = stack.payments_env(PAYMENTS_PROVIDER_TIMEOUT_SECONDS=PROVIDER_TIMEOUT_SECONDS)
        self.stack = stack
        self.log_path = log_path

    async def __aenter__(self) -> Payments:
        self._process_cm = payments_process(self.env, self.log_path)
        self.process = self._process_cm.__enter__()
        port = await wait_for_port(self.env, self.process)
        self.channel = tools_channel(self.stack.var_dir, f"127.0.0.1:{port}")
        self.intents = payment_intents_pb2_grpc.PaymentIntentsStub(self.channel)
        self.admin = admin_pb2_grpc.AdminStub(self.channel)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.channel.close()
        self._process_cm.__exit__(None, None, None)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)


async def wait_for_provider_record(stack: Stack, reference: str) -> provider_pb2.Transaction:
    deadline = time.monotonic() + POLL_SECONDS_MAX
    while True:
        try:
            found = await stack.provider_stub.GetTransaction(
                provider_pb2.GetTransactionRequest(provider="provider_a", reference=reference)
            )
            return found.transaction
        except grpc.aio.AioRpcError as error:
            assert error.code() is grpc.StatusCode.NOT_FOUND
        assert time.monotonic() < deadline, "the provider never recorded the authorization"
        await asyncio.sleep(0.05)


async def authorizations(stack: Stack) -> int:
    state = await stack.provider_stub.GetState(provider_pb2.GetStateRequest(provider="provider_a"))
    return state.providers[0].counters.authorizations


async def start_confirm_and_kill(stack: Stack, tmp_path: pathlib.Path) -> tuple[str, str, str, int]:
    """Create an intent, confirm it with the timeout card, kill payments mid-call."""
    async with Payments(stack, tmp_path / "payments-1.log") as first:
        created = await merchants_pb2_grpc.MerchantsStub(first.channel).CreateMerchant(
            merchants_pb2.CreateMerchantRequest(name="Crash test", country="US", default_currency="USD"),
            metadata=stack.admin_md(),
        )
        secret = created.api_key.secret
        intent = (
            await first.intents.CreatePaymentIntent(
                P.CreatePaymentIntentRequest(amount=4_321, currency="USD"), metadata=stack.md(secret)
            )
        ).payment_intent
        idem = key()
        before = await authorizations(stack)
        call = first.intents.ConfirmPaymentIntent(
            P.ConfirmPaymentIntentRequest(id=intent.id, payment_method=card(TIMEOUT)),
            metadata=stack.md(secret, idem),
            timeout=CLIENT_DEADLINE_SECONDS,
        )
        pending = asyncio.ensure_future(call)
        await wait_for_provider_record(stack, intent.id)
        first.kill()
        with pytest.raises(grpc.aio.AioRpcError):
            await pending
    return secret, intent.id, idem, before


async def test_retry_with_the_same_key_finishes_without_a_second_charge(
    stack: Stack, tmp_path: pathlib.Path
) -> None:
    secret, intent_id, idem, before = await start_confirm_and_kill(stack, tmp_path)
    async with Payments(stack, tmp_path / "payments-2.log") as second:
        deadline = time.monotonic() + POLL_SECONDS_MAX
        while True:
            try:
                response = await second.intents.ConfirmPaymentIntent(
                    P.ConfirmPaymentIntentRequest(id=intent_id, payment_method=card(TIMEOUT)),
                    metadata=stack.md(secret, idem),
                    timeout=CLIENT_DEADLINE_SECONDS * 3,
                )
                break
            except grpc.aio.AioRpcError as error:
                # Until the dead request's lock lapses, the key is in use.
                assert errors.from_rpc_error(error).reason == "IDEMPOTENCY_KEY_IN_USE"
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
        assert response.payment_intent.status == PI.CAPTURED
        assert await authorizations(stack) - before == 1
        transfers = await stack.ledger_stub.LookupTransfers(
            ledger_pb2.LookupTransfersRequest(
                ids=[f"{intent_id}:auth", f"{intent_id}:capture", f"{intent_id}:fee"]
            )
        )
        assert len(transfers.transfers) == 3
        replay = second.intents.ConfirmPaymentIntent(
            P.ConfirmPaymentIntentRequest(id=intent_id, payment_method=card(TIMEOUT)),
            metadata=stack.md(secret, idem),
        )
        assert (await replay).payment_intent.status == PI.CAPTURED
        assert dict(await replay.initial_metadata() or ()).get("idempotent-replayed") == "true"


async def test_completer_finishes_the_abandoned_key(stack: Stack, tmp_path: pathlib.Path) -> None:
    secret, intent_id, idem, before = await start_confirm_and_kill(stack, tmp_path)
    async with Payments(stack, tmp_path / "payments-2.log") as second:
        deadline = time.monotonic() + POLL_SECONDS_MAX
        while True:
            await second.admin.RunJob(
                admin_pb2.RunJobRequest(job="complete_idempotency_keys"), metadata=stack.admin_md()
            )
            got = await second.intents.GetPaymentIntent(
                P.GetPaymentIntentRequest(id=intent_id), metadata=stack.md(secret)
            )
            if got.payment_intent.status == PI.CAPTURED:
                break
            assert time.monotonic() < deadline, "the completer never finished the payment"
            await asyncio.sleep(0.2)
        replay = second.intents.ConfirmPaymentIntent(
            P.ConfirmPaymentIntentRequest(id=intent_id, payment_method=card(TIMEOUT)),
            metadata=stack.md(secret, idem),
        )
        assert (await replay).payment_intent.status == PI.CAPTURED
        assert dict(await replay.initial_metadata() or ()).get("idempotent-replayed") == "true"
        assert await authorizations(stack) - before == 1
