"""Background jobs: each runs one bounded pass and reports how many items it handled.

The workers run them on a schedule; `Admin.RunJob` runs one pass on demand, so tests drive them
deterministically. On PostgreSQL, rows are claimed with FOR UPDATE SKIP LOCKED (replicas take
different rows); the state changes themselves are compare-and-set, so two passes never both act.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from chassis import errors
from payments_svc.adapters import repository
from payments_svc.domain.payments import PaymentIntent
from payments_svc.service_layer.payments import PaymentService

log = logging.getLogger("payments.jobs")

BATCH_MAX = 100
# How long the completer holds a key it is finishing.
COMPLETER_LOCK_SECONDS = 60.0
# The relay marks events published; webhook fan-out to merchant endpoints is part 2.
RELAY_BATCH_MAX = 500

RELAY_OUTBOX = "relay_outbox"
RESOLVE_UNKNOWN_OUTCOMES = "resolve_unknown_outcomes"
EXPIRE_AUTHORIZATIONS = "expire_authorizations"
COMPLETE_IDEMPOTENCY_KEYS = "complete_idempotency_keys"
PRUNE_IDEMPOTENCY_KEYS = "prune_idempotency_keys"

# Encodes an intent as the stored response of a method (None: the method has no intent result).
IntentEncoder = Callable[[str, PaymentIntent], bytes | None]


class Jobs:
    """The passes of every worker, by name."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        payments: PaymentService,
        encode_intent_response: IntentEncoder,
        retention_seconds: int,
        clock: Callable[[], datetime.datetime],
    ) -> None:
        self._engine = engine
        self._payments = payments
        self._encode = encode_intent_response
        self._retention_seconds = retention_seconds
        self._clock = clock
        self.passes: dict[str, Callable[[], Awaitable[int]]] = {
            RELAY_OUTBOX: self.relay_outbox,
            RESOLVE_UNKNOWN_OUTCOMES: payments.resolve_pending,
            EXPIRE_AUTHORIZATIONS: payments.expire_authorizations,
            COMPLETE_IDEMPOTENCY_KEYS: self.complete_idempotency_keys,
            PRUNE_IDEMPOTENCY_KEYS: self.prune_idempotency_keys,
        }

    async def run(self, name: str) -> int:
        """Run one pass of job `name`."""
        job = self.passes.get(name)
        if job is None:
            raise errors.InvalidArgument(
                f"unknown job {name[:64]!r}",
                reason="UNKNOWN_JOB",
                field_violations=[errors.FieldViolation("job", ", ".join(sorted(self.passes)))],
            )
        return await job()

    async def relay_outbox(self) -> int:
        """Mark unpublished events as relayed (the stub of the part-2 publisher)."""
        async with self._engine.begin() as connection:
            batch = await repository.claim_unrelayed_events(connection, RELAY_BATCH_MAX)
            await repository.mark_relayed(connection, [e.id for e in batch], self._clock())
        return len(batch)

    async def complete_idempotency_keys(self) -> int:
        """Finish keys whose request died after recording an operation; forget the others.

        A key still at "started" never reached a durable effect (every handler stores its effect
        and the outcome in one transaction), so forgetting it lets a retry run afresh.
        """
        async with self._engine.begin() as connection:
            abandoned = await repository.abandoned_idempotency_keys(connection, self._clock(), BATCH_MAX)
        done = 0
        for record in abandoned:
            try:
                if await self._complete_one(record):
                    done += 1
            except Exception:
                log.warning(
                    "could not complete idempotency key", extra={"scope": record.scope}, exc_info=True
                )
        return done

    async def _complete_one(self, record: repository.IdempotencyRecord) -> bool:
        now = self._clock()
        lease = now + datetime.timedelta(seconds=COMPLETER_LOCK_SECONDS)
        async with self._engine.begin() as connection:
            if not await repository.take_over_idempotency_key(
                connection,
                record.scope,
                record.key,
                seen_locked_until=record.locked_until,
                locked_until=lease,
            ):
                return False
            if not record.recovery_point.startswith("intent:"):
                await repository.delete_idempotency_key(connection, record.scope, record.key)
                return True
        intent = await self._payments.current(record.recovery_point.removeprefix("intent:"))
        if intent is not None and intent.operation is not None:
            intent = await self._payments.resolve(intent)
        busy = (
            intent is not None and intent.operation is not None and intent.operation.lease_until is not None
        )
        response = self._encode(record.method, intent) if intent is not None and not busy else None
        async with self._engine.begin() as connection:
            if response is None:
                await repository.unlock_idempotency_key(connection, record.scope, record.key)
                return False
            await repository.complete_idempotency_key(
                connection, record.scope, record.key, response_kind="ok", response=response, now=self._clock()
            )
        return True

    async def prune_idempotency_keys(self) -> int:
        """Delete completed keys older than the retention window."""
        cutoff = self._clock() - datetime.timedelta(seconds=self._retention_seconds)
        async with self._engine.begin() as connection:
            return await repository.prune_idempotency_keys(connection, cutoff, BATCH_MAX * 10)
