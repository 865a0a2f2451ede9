"""Delivery of queued webhook events: signed POSTs, duplicates when injected, retries with backoff."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Protocol

from chassis import signatures
from provider_sim.adapters.repository import SqlUnitOfWork
from provider_sim.adapters.webhook_sender import SendResult
from provider_sim.domain.webhooks import WEBHOOK_ATTEMPTS_MAX, DeliveryStatus, backoff_seconds
from provider_sim.service_layer.handlers import ProviderService


class WebhookSender(Protocol):
    """Sends one signed body; the HTTP adapter in production, a fake in unit tests."""

    async def send(self, url: str, body: bytes, signature: str) -> SendResult:
        """POST `body` with the signature header."""
        ...


class WebhookDispatcher:
    """Delivers due events of the providers to the platform's webhook endpoint."""

    def __init__(
        self,
        service: ProviderService,
        uow: SqlUnitOfWork,
        sender: WebhookSender,
        *,
        url_template: str,
        secrets: Mapping[str, str],
        retry_base_seconds: float,
    ) -> None:
        self.service = service
        self.uow = uow
        self.sender = sender
        self.url_template = url_template
        self.secrets = dict(secrets)
        self.retry_base_seconds = retry_base_seconds

    def url(self, provider: str) -> str:
        """The endpoint for `provider`."""
        return self.url_template.replace("{provider}", provider)

    async def deliver_due(self) -> int:
        """One pass: attempt every due event once; return how many were fully delivered."""
        now = self.service.clock()
        async with self.uow.begin() as repo:
            due = await repo.due_events(now)
        delivered_events = 0
        for event in due:
            counters = self.service.runtimes[event.provider].counters
            delivered = event.copies_delivered
            error = ""
            while delivered < event.copies:
                # Each copy is signed at send time; duplicates carry the same body and event id.
                signature = signatures.sign(self.secrets[event.provider], event.body)
                result = await self.sender.send(self.url(event.provider), event.body, signature)
                if not result.delivered:
                    counters.webhook_failures += 1
                    error = result.error
                    break
                counters.webhooks_sent += 1
                delivered += 1
            attempts = event.attempts + 1
            finished_at = self.service.clock()
            if delivered >= event.copies:
                status, delivered_at = DeliveryStatus.DELIVERED, finished_at
                delivered_events += 1
            elif attempts >= WEBHOOK_ATTEMPTS_MAX:
                status, delivered_at = DeliveryStatus.FAILED, None
            else:
                status, delivered_at = DeliveryStatus.PENDING, None
            next_attempt_at = finished_at + datetime.timedelta(
                seconds=backoff_seconds(attempts, self.retry_base_seconds)
            )
            async with self.uow.begin() as repo:
                await repo.record_attempt(
                    event.id,
                    status=status,
                    attempts=attempts,
                    copies_delivered=delivered,
                    next_attempt_at=next_attempt_at,
                    last_error=error,
                    delivered_at=delivered_at,
                )
        return delivered_events
