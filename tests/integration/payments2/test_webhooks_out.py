"""Webhooks out: signed deliveries to a local receiver, retries on the (scaled) schedule,
dead letters, and two dispatcher replicas that never deliver the same event twice.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import uvicorn
from clearhouse.payments.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    events_pb2,
    payment_intents_pb2,
    webhook_endpoints_pb2,
)

from chassis import errors, service, signatures
from payments_svc.bootstrap import build as build_payments
from payments_svc.domain.webhooks import ATTEMPTS_MAX, RETRY_DELAYS_SECONDS
from tests.integration.payments2.conftest import RETRY_SCALE, Env, eventually
from tests.support.stack import tools_channel

pytestmark = pytest.mark.asyncio(loop_scope="module")
W = webhook_endpoints_pb2
P = payment_intents_pb2
DISPATCH_PASSES_MAX = 500


class Receiver:
    """An HTTP endpoint on loopback that records what it gets and answers `status`."""

    def __init__(self) -> None:
        self.status = 200
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.received.append((headers, body))
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "http.response.body", "body": f"status {self.status}".encode()})

    @contextlib.asynccontextmanager
    async def up(self) -> AsyncIterator[None]:
        """Serve until the block ends (the port stays bound, so "down" refuses connections)."""
        self.sock.listen()
        server = uvicorn.Server(
            uvicorn.Config(self, lifespan="off", log_config=None, access_log=False, loop="asyncio")
        )
        task = asyncio.create_task(server.serve(sockets=[self.sock]))
        try:
            await eventually(lambda: _started(server, task), "the receiver")
            yield
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 15)

    def event_ids(self) -> list[str]:
        return [json.loads(body)["id"] for _, body in self.received]


async def _started(server: uvicorn.Server, task: asyncio.Task[None]) -> bool:
    if task.done():
        task.result()
    return bool(server.started)


async def endpoint(env: Env, secret: str, url: str, events: tuple[str, ...] = ("*",)) -> W.WebhookEndpoint:
    response = await env.webhooks.CreateWebhookEndpoint(
        W.CreateWebhookEndpointRequest(url=url, enabled_events=list(events)), metadata=env.stack.md(secret)
    )
    return response.webhook_endpoint


async def deliveries(env: Env, secret: str, endpoint_id: str) -> list[W.WebhookDelivery]:
    found = await env.webhooks.ListWebhookDeliveries(
        W.ListWebhookDeliveriesRequest(endpoint_id=endpoint_id, limit=100), metadata=env.stack.md(secret)
    )
    return list(found.data)


async def pump(env: Env, secret: str, endpoint_id: str, done: Any) -> list[W.WebhookDelivery]:
    """Relay and dispatch until `done(deliveries)` holds (bounded passes, no sleeps as sync)."""
    for _ in range(DISPATCH_PASSES_MAX):
        await env.stack.run_job("relay_outbox")
        await env.stack.run_job("dispatch_webhooks")
        found = await deliveries(env, secret, endpoint_id)
        if found and done(found):
            return found
        await asyncio.sleep(0.01)
    raise AssertionError(f"deliveries never reached the expected state: {found}")


async def test_signed_delivery_verifies_with_the_endpoint_secret(env: Env) -> None:
    stack = env.stack
    merchant = await stack.new_merchant()
    receiver = Receiver()
    async with receiver.up():
        created = await endpoint(env, merchant.secret, receiver.url, ("payment_intent.captured",))
        assert created.secret.startswith("whsec_")
        fetched = await env.webhooks.GetWebhookEndpoint(
            W.GetWebhookEndpointRequest(id=created.id), metadata=stack.md(merchant.secret)
        )
        assert fetched.webhook_endpoint.secret == ""
        intent = await env.captured(merchant.secret, amount=1_234)
        found = await pump(
            env,
            merchant.secret,
            created.id,
            lambda ds: all(d.status == W.WebhookDelivery.DELIVERED for d in ds),
        )
    # Only the subscribed type was delivered, once.
    assert [d.event_type for d in found] == ["payment_intent.captured"]
    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    signatures.verify(created.secret, headers["clearhouse-signature"], body)
    with pytest.raises(signatures.SignatureError):
        signatures.verify("whsec_wrong", headers["clearhouse-signature"], body)
    payload = json.loads(body)
    assert payload["type"] == "payment_intent.captured"
    assert payload["data"]["object"]["id"] == intent.id
    event = await stack.events.GetEvent(
        events_pb2.GetEventRequest(id=payload["id"]), metadata=stack.md(merchant.secret)
    )
    assert event.event.type == "payment_intent.captured"
    attempt = found[0].attempts[0]
    assert (attempt.attempt_number, attempt.http_status, attempt.response_snippet) == (1, 200, "status 200")


async def test_receiver_down_is_retried_on_schedule_then_delivered(env: Env) -> None:
    stack = env.stack
    merchant = await stack.new_merchant()
    receiver = Receiver()
    created = await endpoint(env, merchant.secret, receiver.url, ("payment_intent.created",))
    await stack.intents.CreatePaymentIntent(
        P.CreatePaymentIntentRequest(amount=500, currency="USD"), metadata=stack.md(merchant.secret)
    )
    # Receiver down (port bound, not listening): three failed attempts, each on the schedule.
    failed = await pump(env, merchant.secret, created.id, lambda ds: len(ds[0].attempts) >= 3)
    delivery = failed[0]
    assert delivery.status == W.WebhookDelivery.PENDING
    for number, attempt in enumerate(delivery.attempts, start=1):
        assert (attempt.attempt_number, attempt.http_status) == (number, 0)
        assert attempt.error
    for previous, following, delay in zip(
        delivery.attempts, delivery.attempts[1:], RETRY_DELAYS_SECONDS, strict=False
    ):
        gap = following.attempted_at.ToDatetime() - previous.attempted_at.ToDatetime()
        assert gap >= datetime.timedelta(seconds=delay * RETRY_SCALE)
    async with receiver.up():
        found = await pump(
            env, merchant.secret, created.id, lambda ds: ds[0].status == W.WebhookDelivery.DELIVERED
        )
    assert found[0].attempts[-1].http_status == 200
    assert len(receiver.received) == 1


async def test_dead_letter_after_the_last_attempt_and_redeliver(env: Env) -> None:
    stack = env.stack
    merchant = await stack.new_merchant()
    receiver = Receiver()
    receiver.status = 500
    async with receiver.up():
        created = await endpoint(env, merchant.secret, receiver.url, ("payment_intent.created",))
        await stack.intents.CreatePaymentIntent(
            P.CreatePaymentIntentRequest(amount=700, currency="USD"), metadata=stack.md(merchant.secret)
        )
        found = await pump(
            env, merchant.secret, created.id, lambda ds: ds[0].status == W.WebhookDelivery.DEAD_LETTERED
        )
        dead = found[0]
        assert len(dead.attempts) == ATTEMPTS_MAX
        assert {a.http_status for a in dead.attempts} == {500}
        assert len(receiver.received) == ATTEMPTS_MAX
        events = await stack.events.ListEvents(
            events_pb2.ListEventsRequest(type="webhook_endpoint.delivery_dead_lettered"),
            metadata=stack.md(merchant.secret),
        )
        assert [e.data["object"]["id"] for e in events.data] == [dead.id]
        # The merchant fixes its endpoint and asks for the event again.
        receiver.status = 204
        again = await env.webhooks.RedeliverWebhook(
            W.RedeliverWebhookRequest(endpoint_id=created.id, event_id=dead.event_id),
            metadata=stack.md(merchant.secret),
        )
        assert again.delivery.status == W.WebhookDelivery.PENDING
        await pump(
            env,
            merchant.secret,
            created.id,
            lambda ds: any(d.id == again.delivery.id and d.status == W.WebhookDelivery.DELIVERED for d in ds),
        )


async def test_two_dispatchers_never_deliver_twice(env: Env) -> None:
    stack = env.stack
    merchant = await stack.new_merchant()
    receiver = Receiver()
    replica = await service.start(stack.payments_settings(**_replica_overrides()), build_payments, port=0)
    channel = tools_channel(stack.var_dir, replica.address)
    admins = [stack.admin, admin_pb2_grpc.AdminStub(channel)]
    try:
        async with receiver.up():
            created = await endpoint(env, merchant.secret, receiver.url, ("payment_intent.created",))
            for _ in range(20):
                await stack.intents.CreatePaymentIntent(
                    P.CreatePaymentIntentRequest(amount=100, currency="USD"),
                    metadata=stack.md(merchant.secret),
                )
            await stack.run_job("relay_outbox")

            async def dispatcher(admin: admin_pb2_grpc.AdminStub) -> None:
                for _ in range(DISPATCH_PASSES_MAX):
                    await admin.RunJob(
                        admin_pb2.RunJobRequest(job="dispatch_webhooks"), metadata=stack.admin_md()
                    )
                    found = await deliveries(env, merchant.secret, created.id)
                    if all(d.status == W.WebhookDelivery.DELIVERED for d in found):
                        return
                raise AssertionError("dispatchers did not finish")

            await asyncio.gather(*(dispatcher(a) for a in admins for _ in range(2)))
    finally:
        await channel.close()
        await replica.stop(0)
    counts = collections.Counter(receiver.event_ids())
    assert len(counts) == 20
    assert set(counts.values()) == {1}


def _replica_overrides() -> dict[str, Any]:
    return {
        "webhook_retry_scale": RETRY_SCALE,
        "webhook_allow_private_targets": True,
        "webhook_timeout_seconds": 2.0,
    }


async def test_endpoint_validation_and_tenancy(env: Env) -> None:
    stack = env.stack
    merchant = await stack.new_merchant()
    other = await stack.new_merchant()
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await endpoint(env, merchant.secret, "ftp://example.com/hooks")
    assert errors.from_rpc_error(bad.value).reason == "INVALID_WEBHOOK_URL"
    created = await endpoint(env, merchant.secret, "https://example.com/hooks")
    with pytest.raises(grpc.aio.AioRpcError) as hidden:
        await env.webhooks.GetWebhookEndpoint(
            W.GetWebhookEndpointRequest(id=created.id), metadata=stack.md(other.secret)
        )
    assert errors.from_rpc_error(hidden.value).reason == "WEBHOOK_ENDPOINT_NOT_FOUND"
    listed = await env.webhooks.ListWebhookEndpoints(
        W.ListWebhookEndpointsRequest(), metadata=stack.md(merchant.secret)
    )
    assert [e.id for e in listed.data] == [created.id]
    deleted = await env.webhooks.DeleteWebhookEndpoint(
        W.DeleteWebhookEndpointRequest(id=created.id), metadata=stack.md(merchant.secret)
    )
    assert deleted.deleted
    listed = await env.webhooks.ListWebhookEndpoints(
        W.ListWebhookEndpointsRequest(), metadata=stack.md(merchant.secret)
    )
    assert list(listed.data) == []
