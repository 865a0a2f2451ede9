"""Webhooks out: endpoints, the fan-out of outbox events, and the dispatcher (DESIGN.md §3).

The relay claims unpublished outbox events and, in the same transaction, creates one delivery per
subscribed endpoint and marks the events relayed. The dispatcher claims due deliveries (PostgreSQL
`FOR UPDATE SKIP LOCKED`, then a lease column that other replicas respect; on SQLite the single
writer serializes the claim), POSTs each signed body, and records the attempt only while it still
holds the claim — so two dispatchers never deliver the same attempt. Non-2xx or no answer: retried
on the schedule of `domain/webhooks.py` (scaled by a setting); after the last attempt the delivery
is dead-lettered and a `webhook_endpoint.delivery_dead_lettered` event is recorded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import logging
import secrets
from collections.abc import Callable, Sequence
from typing import Any

import prometheus_client
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis import errors, ids
from payments_svc.adapters import money_repository as store
from payments_svc.adapters import repository
from payments_svc.adapters.webhook_sender import WebhookSender
from payments_svc.domain import webhooks as model
from payments_svc.domain.events import Event
from payments_svc.domain.merchants import Permission
from payments_svc.domain.webhooks import Delivery, DeliveryStatus, Endpoint
from payments_svc.service_layer.auth import Caller
from payments_svc.service_layer.errors import translated
from payments_svc.service_layer.idempotency import Idempotency, Ticket
from payments_svc.service_layer.payment_metrics import observe_events
from payments_svc.service_layer.postings import new_event, parse_cursor, valid_id
from payments_svc.service_layer.reads import page_limit

log = logging.getLogger("payments.webhooks")
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
RELAY_BATCH_MAX = 500
DISPATCH_BATCH_MAX = 50
# A dispatcher's claim outlives one POST (the sender's timeout) by this margin.
LEASE_MARGIN_SECONDS = 10.0
DEAD_LETTERED_EVENT = "webhook_endpoint.delivery_dead_lettered"

DELIVERIES = prometheus_client.Counter(
    "clearhouse_webhook_deliveries_total", "Webhook delivery attempts by outcome.", ["outcome"]
)
DELIVERY_SECONDS = prometheus_client.Histogram(
    "clearhouse_webhook_delivery_seconds",
    "Duration of one webhook POST.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OUTBOX_LAG = prometheus_client.Gauge(
    "clearhouse_outbox_lag_seconds", "Age of the oldest outbox event not yet relayed."
)


@dataclasses.dataclass(frozen=True, slots=True)
class WebhookConfig:
    """Dispatcher knobs."""

    retry_scale: float
    allow_private_targets: bool
    timeout_seconds: float


class WebhookService:
    """Endpoints, deliveries, relay and dispatcher."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        idempotency: Idempotency,
        sender: WebhookSender,
        render_delivery: Callable[[Delivery], dict[str, Any]],
        clock: Callable[[], datetime.datetime],
        config: WebhookConfig,
    ) -> None:
        self._engine = engine
        self._idempotency = idempotency
        self._sender = sender
        self._render_delivery = render_delivery
        self._clock = clock
        self._config = config

    # Endpoints -------------------------------------------------------------------------------

    async def create_endpoint(
        self, caller: Caller, url: str, enabled_events: Sequence[str], description: str, ticket: Ticket | None
    ) -> Endpoint:
        """A new endpoint with its signing secret (returned once by the servicer)."""
        merchant = caller.require(Permission.TRANSACT)
        with translated():
            url, events, description = model.validate_endpoint(
                url, enabled_events, description, allow_private=self._config.allow_private_targets
            )
        endpoint = Endpoint(
            id=ids.new_id("we"),
            merchant_id=merchant.id,
            url=url,
            enabled_events=events,
            secret=SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES),
            description=description,
            created_at=self._clock(),
        )
        async with self._engine.begin() as connection:
            _, more = await store.list_endpoints(
                connection, merchant.id, limit=model.ENDPOINTS_PER_MERCHANT_MAX - 1
            )
            if more:
                raise errors.FailedPrecondition(
                    f"a merchant has at most {model.ENDPOINTS_PER_MERCHANT_MAX} webhook endpoints",
                    reason="WEBHOOK_ENDPOINT_LIMIT",
                )
            await store.insert_endpoint(connection, endpoint)
            await self._idempotency.complete(connection, ticket, endpoint)
        return endpoint

    async def _endpoint(self, merchant_id: str, endpoint_id: str) -> Endpoint:
        if valid_id(endpoint_id, "we"):
            async with self._engine.connect() as connection:
                found = await store.get_endpoint(connection, endpoint_id, merchant_id)
            if found is not None:
                return found
        raise errors.NotFound("no such webhook endpoint", reason="WEBHOOK_ENDPOINT_NOT_FOUND")

    async def get_endpoint(self, caller: Caller, endpoint_id: str) -> Endpoint:
        """One endpoint (the servicer never shows its secret again)."""
        merchant = caller.require(Permission.READ)
        return await self._endpoint(merchant.id, endpoint_id)

    async def list_endpoints(
        self, caller: Caller, limit: int, starting_after: str
    ) -> tuple[list[Endpoint], bool]:
        """The merchant's endpoints, newest first."""
        merchant = caller.require(Permission.READ)
        async with self._engine.connect() as connection:
            return await store.list_endpoints(
                connection,
                merchant.id,
                limit=page_limit(limit),
                starting_after=parse_cursor(starting_after, "we"),
            )

    async def delete_endpoint(self, caller: Caller, endpoint_id: str, ticket: Ticket | None) -> str:
        """Delete an endpoint; its pending deliveries stop."""
        merchant = caller.require(Permission.TRANSACT)
        endpoint = await self._endpoint(merchant.id, endpoint_id)
        async with self._engine.begin() as connection:
            await store.delete_endpoint(connection, endpoint.id, self._clock())
            await self._idempotency.complete(connection, ticket, endpoint.id)
        return endpoint.id

    async def list_deliveries(
        self, caller: Caller, endpoint_id: str, limit: int, starting_after: str, status: DeliveryStatus | None
    ) -> tuple[list[Delivery], bool]:
        """An endpoint's deliveries with every attempt, newest first."""
        merchant = caller.require(Permission.READ)
        endpoint = await self._endpoint(merchant.id, endpoint_id)
        async with self._engine.connect() as connection:
            return await store.list_deliveries(
                connection,
                endpoint.id,
                limit=page_limit(limit),
                starting_after=parse_cursor(starting_after, "wd"),
                status=status.value if status else "",
            )

    async def redeliver(
        self, caller: Caller, endpoint_id: str, event_id: str, ticket: Ticket | None
    ) -> Delivery:
        """A new delivery of an event to an endpoint, due now."""
        merchant = caller.require(Permission.TRANSACT)
        endpoint = await self._endpoint(merchant.id, endpoint_id)
        async with self._engine.begin() as connection:
            event = (
                await repository.get_event(connection, event_id, merchant.id)
                if valid_id(event_id, "evt")
                else None
            )
            if event is None:
                raise errors.NotFound("no such event", reason="EVENT_NOT_FOUND")
            delivery = self._new_delivery(endpoint, event, self._clock())
            await store.insert_deliveries(connection, [delivery])
            await self._idempotency.complete(connection, ticket, delivery)
        return delivery

    # Relay and dispatcher --------------------------------------------------------------------

    @staticmethod
    def _new_delivery(endpoint: Endpoint, event: Event, now: datetime.datetime) -> Delivery:
        return Delivery(
            id=ids.new_id("wd"),
            merchant_id=endpoint.merchant_id,
            endpoint_id=endpoint.id,
            event_id=event.id,
            event_type=event.type,
            status=DeliveryStatus.PENDING,
            attempts=(),
            created_at=now,
            next_attempt_at=now,
        )

    async def relay_outbox(self) -> int:
        """Job pass: publish outbox events as deliveries to subscribed endpoints."""
        now = self._clock()
        async with self._engine.begin() as connection:
            oldest = await store.oldest_unrelayed_event_time(connection)
            OUTBOX_LAG.set(max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
            batch = await repository.claim_unrelayed_events(connection, RELAY_BATCH_MAX)
            endpoints = await store.endpoints_of(connection, [e.merchant_id for e in batch])
            deliveries = [
                self._new_delivery(endpoint, event, now)
                for event in batch
                for endpoint in endpoints
                if endpoint.merchant_id == event.merchant_id
                and model.subscribed(endpoint.enabled_events, event.type)
                # A dead letter is never sent to the endpoint that failed (no endless chain).
                and not (event.type == DEAD_LETTERED_EVENT and event.object_id == endpoint.id)
            ]
            await store.insert_deliveries(connection, deliveries)
            await repository.mark_relayed(connection, [e.id for e in batch], now)
        observe_events(batch)
        return len(batch)

    async def dispatch(self) -> int:
        """Job pass: attempt every due delivery once; returns how many attempts were made."""
        now = self._clock()
        claim_id = secrets.token_hex(8)
        lease = now + datetime.timedelta(seconds=self._config.timeout_seconds + LEASE_MARGIN_SECONDS)
        async with self._engine.begin() as connection:
            claimed = await store.claim_due_deliveries(connection, now, lease, claim_id, DISPATCH_BATCH_MAX)
        if not claimed:
            return 0
        results = await asyncio.gather(*(self._attempt(d, claim_id) for d in claimed), return_exceptions=True)
        for delivery, result in zip(claimed, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("webhook attempt failed", extra={"delivery": delivery.id, "error": str(result)})
        return len(claimed)

    async def _attempt(self, delivery: Delivery, claim_id: str) -> None:
        async with self._engine.connect() as connection:
            endpoint = await store.get_endpoint(connection, delivery.endpoint_id)
            event = await repository.get_event(connection, delivery.event_id, delivery.merchant_id)
        if endpoint is None or event is None:
            dead = dataclasses.replace(delivery, status=DeliveryStatus.DEAD_LETTERED, next_attempt_at=None)
            async with self._engine.begin() as connection:
                await store.store_attempt(connection, dead, claim_id)
            return
        started = self._clock()
        sent = await self._sender.send(endpoint.url, endpoint.secret, event_body(event))
        DELIVERY_SECONDS.observe(sent.latency_ms / 1000)
        attempt = model.Attempt(
            attempt_number=len(delivery.attempts) + 1,
            attempted_at=started,
            http_status=sent.http_status,
            latency_ms=sent.latency_ms,
            response_snippet=sent.response_snippet,
            error=sent.error,
        )
        after = model.record_attempt(delivery, attempt, self._config.retry_scale)
        outcome = {
            DeliveryStatus.DELIVERED: "delivered",
            DeliveryStatus.PENDING: "retry",
            DeliveryStatus.DEAD_LETTERED: "dead_lettered",
        }[after.status]
        DELIVERIES.labels(outcome=outcome).inc()
        async with self._engine.begin() as connection:
            if not await store.store_attempt(connection, after, claim_id):
                log.warning(
                    "webhook claim lost before the attempt was recorded", extra={"delivery": delivery.id}
                )
                return
            if after.status is DeliveryStatus.DEAD_LETTERED:
                await repository.insert_events(
                    connection,
                    [
                        new_event(
                            DEAD_LETTERED_EVENT,
                            after.merchant_id,
                            after.endpoint_id,
                            self._render_delivery(after),
                            self._clock(),
                        )
                    ],
                )


def event_body(event: Event) -> bytes:
    """The JSON a merchant receives: the event as the Events API shows it."""
    return json.dumps(
        {
            "id": event.id,
            "object": "event",
            "type": event.type,
            "merchant_id": event.merchant_id,
            "created": int(event.created_at.timestamp()),
            "data": event.data,
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
