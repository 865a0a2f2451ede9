"""Background worker: opens due chargebacks and delivers queued webhooks, until cancelled."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from provider_sim.service_layer.handlers import ProviderService
from provider_sim.service_layer.webhooks import WebhookDispatcher

log = logging.getLogger("provider_sim.worker")


async def run_worker(service: ProviderService, dispatcher: WebhookDispatcher, poll_seconds: float) -> None:
    """Loop forever: one pass of work, then wait for a wake-up or the poll interval."""
    while True:
        # Cleared before the pass, so work queued during the pass wakes the next one at once.
        service.work_available.clear()
        try:
            await service.open_due_chargebacks()
            await dispatcher.deliver_due()
        except asyncio.CancelledError:
            raise
        except Exception:
            # A failed pass (database briefly unavailable) is retried at the next poll.
            log.exception("provider worker pass failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(service.work_available.wait(), poll_seconds)
