"""Group commit: concurrent CreateTransfers calls share one database transaction.

A single-transfer call costs about a dozen statements and a commit whatever it carries, so the
ledger's throughput is bounded by transactions, not transfers. Calls that arrive while a
transaction is in flight wait in this queue and are applied together in the next one (in
arrival order, each request keeping its own results, chains and duplicate detection), the way
TigerBeetle batches client requests. Under no load a call goes straight through.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence

from opentelemetry import context as otel_context
from opentelemetry import trace

from chassis import errors
from ledger_svc.domain.model import TransferRequest, TransferResult

log = logging.getLogger("ledger.write_queue")
_tracer = trace.get_tracer(__name__)

# Most transfers one grouped transaction carries (a full-size request always goes alone).
GROUP_TRANSFERS_MAX = 2_000
# Most requests waiting; beyond it callers are told to back off instead of queueing forever.
QUEUE_REQUESTS_MAX = 10_000
# A group's span links to its callers' spans, up to the SDK's default link limit.
SPAN_LINKS_MAX = 128

GroupResult = tuple[list[list[TransferResult]], str]
Executor = Callable[[Sequence[Sequence[TransferRequest]]], Awaitable[GroupResult]]


@dataclasses.dataclass
class _Pending:
    transfers: Sequence[TransferRequest]
    future: asyncio.Future[tuple[list[TransferResult], str]]
    # The caller's span, linked from the span of the group that carries the request.
    span_context: trace.SpanContext


class WriteQueue:
    """Serializes this process's transfer writes and groups whatever is waiting."""

    def __init__(
        self, execute: Executor, writers: int = 1, group_transfers_max: int = GROUP_TRANSFERS_MAX
    ) -> None:
        self._execute = execute
        # Concurrent transactions this process runs (1 on SQLite, which serializes writers anyway).
        self._writers = writers
        self._group_transfers_max = group_transfers_max
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(QUEUE_REQUESTS_MAX)
        self._closed = False

    async def submit(self, transfers: Sequence[TransferRequest]) -> tuple[list[TransferResult], str]:
        """Queue one request; wait for its results and the id of the batch that carried it."""
        if self._closed:
            raise errors.Unavailable("the ledger is shutting down", reason="LEDGER_STOPPING")
        future: asyncio.Future[tuple[list[TransferResult], str]] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Pending(transfers, future, trace.get_current_span().get_span_context()))
        except asyncio.QueueFull:
            raise errors.ResourceExhausted(
                "the ledger's write queue is full", reason="LEDGER_OVERLOADED", retry_after_seconds=0.1
            ) from None
        # A cancelled caller does not cancel the write: it is applied (and idempotent on retry).
        return await asyncio.shield(future)

    async def run(self) -> None:
        """The writer loops (one background task of the service running `writers` of them)."""
        try:
            await asyncio.gather(*(self._writer() for _ in range(self._writers)))
        finally:
            self._closed = True
            self._fail_waiting()

    async def _writer(self) -> None:
        held: _Pending | None = None
        while True:
            group = [held or await self._queue.get()]
            held = None
            total = len(group[0].transfers)
            while not self._queue.empty():
                waiting = self._queue.get_nowait()
                if total + len(waiting.transfers) > self._group_transfers_max:
                    held = waiting
                    break
                group.append(waiting)
                total += len(waiting.transfers)
            try:
                await self._flush(group)
            except asyncio.CancelledError:
                if held is not None and not held.future.done():
                    held.future.set_exception(
                        errors.Unavailable("the ledger is shutting down", reason="LEDGER_STOPPING")
                    )
                raise

    async def _flush(self, group: list[_Pending]) -> None:
        links = [
            trace.Link(item.span_context) for item in group[:SPAN_LINKS_MAX] if item.span_context.is_valid
        ]
        try:
            # One span per grouped transaction, in a fresh context (not a child of whichever call
            # started the writer), linked to the calls it carries.
            with _tracer.start_as_current_span(
                "ledger.write_group",
                context=otel_context.Context(),
                links=links,
                attributes={
                    "ledger.group.requests": len(group),
                    "ledger.group.transfers": sum(len(item.transfers) for item in group),
                },
            ):
                results, batch_id = await self._execute([item.transfers for item in group])
        except asyncio.CancelledError:
            for item in group:
                if not item.future.done():
                    item.future.set_exception(
                        errors.Unavailable("the ledger stopped mid-write; retry", reason="LEDGER_STOPPING")
                    )
            raise
        except Exception as error:
            log.warning("grouped write failed", exc_info=True)
            failure = (
                error
                if isinstance(error, errors.ClearhouseError)
                else errors.Unavailable(
                    "the ledger's database is unavailable", reason="LEDGER_STORAGE_UNAVAILABLE"
                )
            )
            for item in group:
                if not item.future.done():
                    item.future.set_exception(failure)
            return
        for item, item_results in zip(group, results, strict=True):
            if not item.future.done():
                item.future.set_result((item_results, batch_id))

    def _fail_waiting(self) -> None:
        waiting = []
        while not self._queue.empty():
            waiting.append(self._queue.get_nowait())
        for item in waiting:
            if not item.future.done():
                item.future.set_exception(
                    errors.Unavailable("the ledger is shutting down", reason="LEDGER_STOPPING")
                )
