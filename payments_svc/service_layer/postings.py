"""Ledger postings outbox.

Transfers are stored with the state change that causes them, then posted at once and, should
the ledger be unreachable, by the `post_ledger` job until it confirms.

Transfer ids are deterministic, so posting a batch twice is EXISTS at the ledger, never a double.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chassis import errors, ids
from payments_svc.adapters import money_repository as store
from payments_svc.adapters.ledger_client import LedgerClient, LedgerRefused
from payments_svc.domain.events import Event
from payments_svc.domain.ledger import TransferSpec
from payments_svc.service_layer.payments import current_trace_id

log = logging.getLogger("payments.postings")
POSTING_BATCH_MAX = 100


@dataclasses.dataclass(frozen=True, slots=True)
class Queued:
    """A posting stored in the current transaction, to flush after commit."""

    id: str


class Postings:
    """Queue ledger transfers transactionally; flush them after commit."""

    def __init__(
        self, engine: AsyncEngine, ledger: LedgerClient, clock: Callable[[], datetime.datetime]
    ) -> None:
        self._engine = engine
        self._ledger = ledger
        self._clock = clock

    async def queue(
        self,
        connection: AsyncConnection,
        posting_id: str,
        merchant_id: str,
        currency: str,
        transfers: Sequence[TransferSpec],
    ) -> Queued:
        """Store `transfers` in the caller's transaction."""
        await store.insert_posting(
            connection,
            posting_id,
            merchant_id=merchant_id,
            currency=currency,
            transfers=transfers,
            now=self._clock(),
        )
        return Queued(posting_id)

    async def post_now(
        self,
        connection: AsyncConnection,
        posting_id: str,
        merchant_id: str,
        currency: str,
        transfers: Sequence[TransferSpec],
    ) -> None:
        """Post inside the caller's transaction (it rolls back if the ledger refuses)."""
        try:
            await self._ledger.ensure_chart(merchant_id, currency)
            await self._ledger.post(transfers)
        except LedgerRefused as refused:
            log.error("ledger refused a posting", extra={"posting": posting_id, "results": refused.results})
            raise errors.Internal("the ledger refused the posting", reason="LEDGER_REFUSED") from None
        await store.insert_posting(
            connection,
            posting_id,
            merchant_id=merchant_id,
            currency=currency,
            transfers=transfers,
            now=self._clock(),
        )
        await store.mark_posted(connection, posting_id, self._clock())

    async def flush(self, queued: Sequence[Queued], *, strict: bool = False) -> int:
        """Post these postings now; with `strict`, a failure is raised (else left to the job)."""
        async with self._engine.connect() as connection:
            found = await store.unposted(connection, POSTING_BATCH_MAX, [q.id for q in queued])
        return await self._post(found, strict=strict)

    async def post_pending(self) -> int:
        """Job pass: post every posting the ledger has not confirmed."""
        async with self._engine.connect() as connection:
            found = await store.unposted(connection, POSTING_BATCH_MAX)
        return await self._post(found, strict=False)

    async def _post(self, found: Sequence[store.Posting], *, strict: bool) -> int:
        done = 0
        for posting in found:
            try:
                await self._ledger.ensure_chart(posting.merchant_id, posting.currency)
                await self._ledger.post(posting.transfers)
            except (errors.ClearhouseError, LedgerRefused) as failure:
                log.warning("ledger posting deferred", extra={"posting": posting.id, "error": str(failure)})
                if strict:
                    raise errors.Unavailable(
                        "the ledger did not take the posting; it is retried automatically",
                        reason="LEDGER_POSTING_DEFERRED",
                        retry_after_seconds=1.0,
                    ) from None
                continue
            async with self._engine.begin() as connection:
                await store.mark_posted(connection, posting.id, self._clock())
            done += 1
        return done


def new_event(
    type_: str, merchant_id: str, object_id: str, rendered: dict[str, Any], now: datetime.datetime
) -> Event:
    """An outbox event for a part-2 resource."""
    return Event(
        id=ids.new_id("evt"),
        type=type_,
        merchant_id=merchant_id,
        object_id=object_id,
        data={"object": rendered},
        created_at=now,
        trace_id=current_trace_id(),
    )


def parse_cursor(value: str, prefix: str) -> str:
    """A `starting_after` id of kind `prefix`, or INVALID_CURSOR."""
    if not value:
        return ""
    try:
        ids.parse_id(value, prefix)
    except ids.InvalidId:
        raise errors.InvalidArgument(
            f"starting_after must be a {prefix}_… id",
            reason="INVALID_CURSOR",
            field_violations=[errors.FieldViolation("starting_after", f"a {prefix}_… id")],
        ) from None
    return value


def valid_id(value: str, prefix: str) -> bool:
    """Whether `value` is an id of kind `prefix`."""
    try:
        ids.parse_id(value, prefix)
    except ids.InvalidId:
        return False
    return True
