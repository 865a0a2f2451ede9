"""Group commit of audited vault operations: many callers' work and log entries, one transaction.

The access log is one hash chain, so its appends are serial whatever we do; paying a whole
transaction (BEGIN, head lock, reads, inserts, head update, COMMIT) per call made that serial
section the vault's ceiling. Here one writer task per process takes every queued operation, up to
`GROUP_OPERATIONS_MAX`, and runs them in ONE transaction: the head is locked once (FOR UPDATE on
PostgreSQL, which also orders groups of several replicas; BEGIN IMMEDIATE on SQLite), the key state
and every token the group touches are read once, each operation then runs in queue order against
that state and stages its rows, and the new tokens, the chained log entries and the head move are
written with one statement each. Each caller's future is resolved after the commit, so a result
is never returned for work that did not commit.

Isolation: an operation that refuses (a chassis error from its `apply`) stages nothing, and its
DENIED/FAILED entry joins the same group; the others are unaffected. If the group's transaction
itself fails (a database error), every operation is retried alone, so only the culprit fails.

Operations that change key state or shred (RotateKey, RewrapTokens, SetMinDecryptionVersion,
DeleteToken) are *exclusive*: they run alone, in their own transaction, in queue order, exactly as
before: a refusal rolls their work back and appends the refusal entry separately.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chassis import db, errors
from vault_svc.adapters import repository
from vault_svc.domain.access_log import EntryDraft, Outcome
from vault_svc.domain.model import TokenRecord

T = TypeVar("T")

# Operations per transaction: bounds the head lock's hold time (and a group's statement sizes).
GROUP_OPERATIONS_MAX = 256
# Operations waiting for the writer: beyond this the vault sheds load instead of queueing
# without bound (each waiting call holds its request in memory).
QUEUE_OPERATIONS_MAX = 10_000
QUEUE_FULL_RETRY_AFTER_SECONDS = 0.2
# A group's span links to its callers' spans, up to the SDK's default link limit.
SPAN_LINKS_MAX = 128

_tracer = trace.get_tracer(__name__)

DedupeKey = tuple[str, str, int, int]


class GroupState:
    """What one group's transaction read once, and the token rows its operations stage."""

    __slots__ = (
        "_staged_by_card",
        "connection",
        "current_version",
        "min_decryption_version",
        "new_records",
        "records",
    )

    def __init__(
        self,
        connection: AsyncConnection,
        *,
        current_version: int,
        min_decryption_version: int,
        records: dict[str, TokenRecord],
    ) -> None:
        self.connection = connection
        self.current_version = current_version
        self.min_decryption_version = min_decryption_version
        self.records = records
        self.new_records: list[TokenRecord] = []
        self._staged_by_card: dict[DedupeKey, TokenRecord] = {}

    def __repr__(self) -> str:
        return f"GroupState(records={len(self.records)}, new={len(self.new_records)})"

    def stage_token(self, record: TokenRecord) -> None:
        """Insert `record` with the group's commit."""
        self.new_records.append(record)
        self.records[record.token] = record
        key = (record.merchant_id, record.fingerprint, record.exp_month, record.exp_year)
        self._staged_by_card.setdefault(key, record)

    async def live_duplicate(
        self, merchant_id: str, fingerprint: str, exp_month: int, exp_year: int
    ) -> TokenRecord | None:
        """The merchant's oldest live token for this card and expiry, committed or staged here.

        A committed token is older than any staged in this group (ids are time-ordered), so the
        database answer wins; a staged one covers a same-card tokenize earlier in this group.
        """
        stored = await repository.find_live_duplicate(
            self.connection, merchant_id, fingerprint, exp_month, exp_year
        )
        return stored or self._staged_by_card.get((merchant_id, fingerprint, exp_month, exp_year))


@dataclasses.dataclass(eq=False, slots=True)
class Operation(Generic[T]):
    """One caller's audited operation.

    Batched operations have `apply` (run against the group's state; may read `reads` from it) and
    must raise before staging anything. Exclusive ones have `work` (their own transaction).
    `refusal` is the entry logged when the operation refuses (its outcome replaced).
    """

    refusal: EntryDraft
    apply: Callable[[GroupState], Awaitable[tuple[T, EntryDraft]]] | None = None
    work: Callable[[AsyncConnection], Awaitable[tuple[T, EntryDraft]]] | None = None
    reads: str = ""
    future: asyncio.Future[T] | None = None
    # The caller's span, linked from the span of the group that runs the operation.
    span_context: trace.SpanContext | None = None

    @property
    def exclusive(self) -> bool:
        """True when the operation runs alone in its own transaction."""
        return self.work is not None


@dataclasses.dataclass(slots=True)
class CommitStats:
    """Counters of the writer (diagnostics and tests)."""

    operations_taken: int = 0
    groups_committed: int = 0
    largest_group: int = 0
    # Groups whose transaction failed and whose operations were retried one by one.
    groups_split: int = 0

    def committed(self, size: int) -> None:
        """Count one committed transaction of `size` operations."""
        self.groups_committed += 1
        self.largest_group = max(self.largest_group, size)


@dataclasses.dataclass(slots=True)
class _Outcome:
    value: Any = None
    error: BaseException | None = None


class GroupCommitter:
    """The writer queue: groups queued operations into shared transactions (see module doc)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        now_us: Callable[[], int],
        refusal_outcome: Callable[[errors.ClearhouseError], Outcome],
        group_operations_max: int = GROUP_OPERATIONS_MAX,
        queue_operations_max: int = QUEUE_OPERATIONS_MAX,
    ) -> None:
        self._engine = engine
        self._now_us = now_us
        self._refusal_outcome = refusal_outcome
        self._group_max = group_operations_max
        self._queue_max = queue_operations_max
        self._pending: collections.deque[Operation[Any]] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._closed = False
        self.stats = CommitStats()

    def __repr__(self) -> str:
        return f"GroupCommitter(pending={len(self._pending)}, {self.stats})"

    @property
    def pending(self) -> int:
        """Operations queued and not yet taken by the writer."""
        return len(self._pending)

    async def submit(self, operation: Operation[T]) -> T:
        """Queue `operation` and wait for its own result (or its own error) after the commit."""
        if self._closed:
            raise errors.Unavailable("the vault is stopping", reason="VAULT_STOPPING")
        if len(self._pending) >= self._queue_max:
            raise errors.ResourceExhausted(
                "the vault's write queue is full",
                reason="VAULT_BUSY",
                retry_after_seconds=QUEUE_FULL_RETRY_AFTER_SECONDS,
            )
        loop = asyncio.get_running_loop()
        operation.future = loop.create_future()
        operation.span_context = trace.get_current_span().get_span_context()
        self._ensure_worker(loop)
        assert self._wakeup is not None
        self._pending.append(operation)
        self._wakeup.set()
        return await operation.future

    def _ensure_worker(self, loop: asyncio.AbstractEventLoop) -> None:
        worker = self._worker
        if worker is not None and not worker.done() and worker.get_loop() is loop:
            return
        self._wakeup = asyncio.Event()
        # A fresh context: the writer must not inherit (and parent every group's spans under)
        # the span of whichever call happened to start it.
        self._worker = loop.create_task(self._run(), name="vault-group-commit", context=contextvars.Context())

    async def close(self) -> None:
        """Stop the writer; queued operations (never run) and the group in flight fail UNAVAILABLE.

        The group in flight is cancelled: its transaction rolls back unless its COMMIT had
        already been sent, the usual ambiguity of a call interrupted by shutdown.
        """
        self._closed = True
        worker, self._worker = self._worker, None
        if worker is not None and not worker.done():
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        while self._pending:
            operation = self._pending.popleft()
            _settle(
                operation,
                _Outcome(error=errors.Unavailable("the vault is stopping", reason="VAULT_STOPPING")),
            )

    # --- the writer ------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._wakeup is not None
        wakeup = self._wakeup
        while True:
            while not self._pending:
                wakeup.clear()
                await wakeup.wait()
            group = self._next_group()
            if not group:
                continue
            links = [
                trace.Link(operation.span_context)
                for operation in group[:SPAN_LINKS_MAX]
                if operation.span_context is not None and operation.span_context.is_valid
            ]
            try:
                with _tracer.start_as_current_span(
                    "vault.group_commit", links=links, attributes={"vault.group.operations": len(group)}
                ):
                    if group[0].exclusive:
                        await self._run_exclusive(group[0])
                    else:
                        await self._run_batched(group)
            except asyncio.CancelledError:
                for operation in group:
                    _settle(
                        operation,
                        _Outcome(error=errors.Unavailable("the vault is stopping", reason="VAULT_STOPPING")),
                    )
                raise
            except Exception as error:  # the writer must outlive any one group
                for operation in group:
                    _settle(operation, _Outcome(error=error))

    def _next_group(self) -> list[Operation[Any]]:
        """The next run of batched operations (up to the maximum), or one exclusive operation.

        Operations whose caller already gave up (cancelled future) are dropped unexecuted: their
        effect never happened, so there is nothing to log.
        """
        group: list[Operation[Any]] = []
        pending = self._pending
        while pending and len(group) < self._group_max:
            operation = pending[0]
            if operation.exclusive and group:
                break
            pending.popleft()
            self.stats.operations_taken += 1
            assert operation.future is not None
            if operation.future.done():
                continue
            group.append(operation)
            if operation.exclusive:
                break
        return group

    async def _run_batched(self, group: list[Operation[Any]]) -> None:
        try:
            outcomes = await self._commit_group(group)
        except Exception as error:
            if len(group) == 1:
                _settle(group[0], _Outcome(error=error))
                return
            # Isolate the culprit: the group rolled back as a whole, so run each one alone
            # (skipping callers that gave up meanwhile: nothing of theirs committed).
            self.stats.groups_split += 1
            for operation in group:
                assert operation.future is not None
                if not operation.future.done():
                    await self._run_batched([operation])
            return
        for operation, outcome in zip(group, outcomes, strict=True):
            _settle(operation, outcome)

    async def _commit_group(self, group: list[Operation[Any]]) -> list[_Outcome]:
        outcomes: list[_Outcome] = []
        drafts: list[EntryDraft] = []
        async with db.transaction(self._engine) as connection:
            head, current_version, min_version = await repository.lock_head_with_key_state(connection)
            wanted = {operation.reads for operation in group if operation.reads}
            state = GroupState(
                connection,
                current_version=current_version,
                min_decryption_version=min_version,
                records=await repository.get_tokens(connection, wanted),
            )
            for operation in group:
                assert operation.apply is not None
                staged = len(state.new_records)
                try:
                    value, draft = await operation.apply(state)
                except errors.ClearhouseError as error:
                    if len(state.new_records) != staged:
                        raise AssertionError("an operation staged rows and then refused") from error
                    outcomes.append(_Outcome(error=error))
                    drafts.append(
                        dataclasses.replace(operation.refusal, outcome=self._refusal_outcome(error))
                    )
                    continue
                outcomes.append(_Outcome(value=value))
                drafts.append(draft)
            await repository.insert_tokens(connection, state.new_records)
            await repository.append(connection, head, drafts, self._now_us())
        self.stats.committed(len(group))
        return outcomes

    async def _run_exclusive(self, operation: Operation[Any]) -> None:
        assert operation.work is not None
        try:
            async with db.transaction(self._engine) as connection:
                head = await repository.lock_head(connection)
                value, draft = await operation.work(connection)
                await repository.append(connection, head, [draft], self._now_us())
        except errors.ClearhouseError as error:
            # The work rolled back; its refusal is logged on its own, then reported.
            refusal = dataclasses.replace(operation.refusal, outcome=self._refusal_outcome(error))
            try:
                async with db.transaction(self._engine) as connection:
                    head = await repository.lock_head(connection)
                    await repository.append(connection, head, [refusal], self._now_us())
            except Exception as log_error:
                _settle(operation, _Outcome(error=log_error))
                return
            _settle(operation, _Outcome(error=error))
            return
        except Exception as error:
            _settle(operation, _Outcome(error=error))
            return
        self.stats.committed(1)
        _settle(operation, _Outcome(value=value))


def _settle(operation: Operation[Any], outcome: _Outcome) -> None:
    future = operation.future
    if future is None or future.done():
        return
    if outcome.error is not None:
        future.set_exception(outcome.error)
    else:
        future.set_result(outcome.value)


def log_only(draft: EntryDraft) -> Callable[[GroupState], Awaitable[tuple[None, EntryDraft]]]:
    """An `apply` that only appends `draft` (a call refused before it reached the queue)."""

    async def apply(_state: GroupState) -> tuple[None, EntryDraft]:
        return None, draft

    return apply
