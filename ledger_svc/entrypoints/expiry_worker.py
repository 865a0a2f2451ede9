"""Background worker: releases pending transfers whose timeout has passed.

Every replica may run it: expiring takes the same account locks as any transfer, and a transfer
another replica already released is simply skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ledger_svc.service_layer.handlers import LedgerService

log = logging.getLogger("ledger.expiry")


def expiry_worker(service: LedgerService, interval_seconds: float) -> Callable[[], Awaitable[None]]:
    """The worker coroutine for the service definition."""

    async def expire_pending_transfers() -> None:
        while True:
            try:
                released = await service.expire_pending()
            except asyncio.CancelledError:
                raise
            except Exception:
                # A failed round (database restarting) is retried at the next tick.
                log.warning("expiry round failed", exc_info=True)
                released = []
            if released:
                log.info("expired pending transfers", extra={"count": len(released)})
            # A full round means more are due: go again at once instead of waiting.
            if len(released) < 1_000:
                await asyncio.sleep(interval_seconds)

    return expire_pending_transfers
