"""Background workers: one loop running every job pass on a schedule.

Each pass is bounded (see service_layer/jobs.py); a failing pass is logged and the loop goes on.
Cancellation (service shutdown) is the loop's exit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from payments_svc.service_layer.jobs import Jobs

log = logging.getLogger("payments.workers")


def worker_loop(jobs: Jobs, interval_seconds: float) -> Callable[[], Awaitable[None]]:
    """The coroutine function the service runs in the background."""

    async def payments_workers() -> None:
        while True:
            for name in jobs.passes:
                try:
                    await jobs.run(name)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("job pass failed", extra={"job": name})
            await asyncio.sleep(interval_seconds)

    return payments_workers
