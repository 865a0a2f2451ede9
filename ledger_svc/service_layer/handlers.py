"""Use cases of the ledger: each one a short database transaction around the pure engine."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chassis import errors, ids
from ledger_svc.adapters import store
from ledger_svc.adapters.orm import accounts, batches, entries, transfers
from ledger_svc.domain.chain import GENESIS_HASH, batch_hash
from ledger_svc.domain.engine import Changes, TransferEngine, create_accounts
from ledger_svc.domain.model import (
    BATCH_SIZE_MAX,
    Account,
    AccountResult,
    Entry,
    EntryKind,
    EntrySide,
    NewAccount,
    Transfer,
    TransferRequest,
    TransferResult,
    TransferState,
)
from ledger_svc.service_layer.write_queue import WriteQueue

log = logging.getLogger("ledger.handlers")

T = TypeVar("T")
Clock = Callable[[], int]

# A transaction that loses a race (unique key taken by another replica, PostgreSQL deadlock or
# serialization failure, SQLite busy) is retried from scratch this many times before the caller
# is told to retry.
WRITE_ATTEMPTS_MAX = 8
RETRY_BACKOFF_SECONDS_MAX = 0.05
PAGE_SIZE_DEFAULT = 100
PAGE_SIZE_MAX = 1_000
EXPIRE_LIMIT_DEFAULT = 1_000
# Batches re-hashed per round trip by VerifyChain.
VERIFY_CHUNK_BATCHES = 500
# Offending rows CheckInvariants reports per invariant (the first ones by account id).
VIOLATIONS_REPORTED_MAX = 1_000
_RETRYABLE_PGCODES = frozenset({"40001", "40P01", "23505"})


def wall_clock_us() -> int:
    """Microseconds since the epoch."""
    return time.time_ns() // 1_000


@dataclasses.dataclass(frozen=True, slots=True)
class EntryView:
    """An entry as listed: with its sequence number, time, and its transfer's code and metadata."""

    seq: int
    entry: Entry
    currency: str
    created_at_us: int
    code: int
    metadata: dict[str, str]


@dataclasses.dataclass(frozen=True, slots=True)
class Violation:
    """One broken invariant."""

    invariant: str
    account_id: str
    detail: str


@dataclasses.dataclass(frozen=True, slots=True)
class InvariantReport:
    """What CheckInvariants checked and found."""

    checked: tuple[str, ...]
    violations: tuple[Violation, ...]
    accounts_checked: int
    transfers_checked: int


@dataclasses.dataclass(frozen=True, slots=True)
class ChainReport:
    """What VerifyChain recomputed."""

    ok: bool
    batches_checked: int
    first_broken_batch_id: str
    detail: str


INVARIANTS = (
    "debits_equal_credits_posted",
    "debits_equal_credits_pending",
    "flag_overdrawn",
    "balance_equals_entries",
    "pending_equals_open_transfers",
)


class _StaleLockSet(Exception):
    """The set of accounts to lock changed between the look-up and the lock: retry."""


def _retryable(error: BaseException) -> bool:
    if isinstance(error, _StaleLockSet | exc.IntegrityError):
        return True
    if isinstance(error, exc.DBAPIError):
        code = getattr(error.orig, "pgcode", None) or getattr(error.orig, "sqlstate", None)
        if code in _RETRYABLE_PGCODES:
            return True
        return "database is locked" in str(error.orig)
    return False


def _check_batch_size(count: int, field: str) -> None:
    if count > BATCH_SIZE_MAX:
        raise errors.InvalidArgument(
            f"at most {BATCH_SIZE_MAX} items per call",
            reason="BATCH_TOO_LARGE",
            field_violations=[errors.FieldViolation(field, f"at most {BATCH_SIZE_MAX} items")],
        )


class LedgerService:
    """The ledger's use cases over one database."""

    def __init__(self, engine: AsyncEngine, clock: Clock = wall_clock_us, *, writers: int = 1) -> None:
        self._engine = engine
        self._clock = clock
        self.write_queue = WriteQueue(self._write_transfer_group, writers=writers)

    # -- transactions --------------------------------------------------------------------------

    async def _in_transaction(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        for attempt in range(1, WRITE_ATTEMPTS_MAX + 1):
            try:
                async with self._engine.begin() as connection:
                    return await work(connection)
            except (exc.DBAPIError, _StaleLockSet) as error:
                if not _retryable(error) or attempt == WRITE_ATTEMPTS_MAX:
                    if _retryable(error):
                        raise errors.Aborted(
                            "the ledger lost too many races; retry",
                            reason="LEDGER_CONTENTION",
                            retry_after_seconds=0.1,
                        ) from error
                    raise
                log.info("retrying a ledger transaction", extra={"attempt": attempt})
                await asyncio.sleep(random.uniform(0, RETRY_BACKOFF_SECONDS_MAX * attempt))
        raise AssertionError("unreachable")

    # -- accounts ------------------------------------------------------------------------------

    async def create_accounts(self, requests: Sequence[NewAccount]) -> list[AccountResult]:
        """Create a batch of accounts; one result each."""
        _check_batch_size(len(requests), "accounts")
        if not requests:
            return []

        async def work(connection: AsyncConnection) -> list[AccountResult]:
            now_us = self._clock()
            existing = await store.load_accounts(connection, [r.id for r in requests])
            results, created = create_accounts(requests, existing, now_us)
            if created:
                await store.commit_changes(
                    connection, Changes(new_accounts=created), ids.new_id("batch"), now_us
                )
            return results

        return await self._in_transaction(work)

    # -- transfers -----------------------------------------------------------------------------

    async def create_transfers(self, requests: Sequence[TransferRequest]) -> tuple[list[TransferResult], str]:
        """Apply a batch of transfers (grouped with concurrent calls); results and batch id."""
        _check_batch_size(len(requests), "transfers")
        if not requests:
            return [], ""
        return await self.write_queue.submit(requests)

    async def _write_transfer_group(
        self, group: Sequence[Sequence[TransferRequest]]
    ) -> tuple[list[list[TransferResult]], str]:
        async def work(connection: AsyncConnection) -> tuple[list[list[TransferResult]], str]:
            flat = [request for batch in group for request in batch]
            pending_ids = {r.pending_id for r in flat if r.pending_id}
            account_ids = {r.debit_account_id for r in flat} | {r.credit_account_id for r in flat}
            transfer_ids = {r.id for r in flat} | pending_ids
            if connection.dialect.name == "sqlite":
                # BEGIN IMMEDIATE already holds SQLite's single write lock for the whole
                # transaction, so the transfers are stable before any account is "locked": read
                # them first and take the pending transfers' accounts from them (one statement
                # fewer per group than the look-up/lock/read protocol PostgreSQL needs).
                known = await store.load_transfers(connection, transfer_ids)
                for pending_id in pending_ids:
                    if pending_id in known:
                        account_ids.add(known[pending_id].debit_account_id)
                        account_ids.add(known[pending_id].credit_account_id)
                account_ids.discard("")
                locked = await store.lock_accounts(connection, account_ids)
            else:
                account_ids |= await store.pending_accounts(connection, pending_ids)
                account_ids.discard("")
                locked = await store.lock_accounts(connection, account_ids)
                known = await store.load_transfers(connection, transfer_ids)
            resolved = (known[i] for i in pending_ids if i in known)
            if any(t.debit_account_id not in locked or t.credit_account_id not in locked for t in resolved):
                # A pending transfer committed by another replica after our unlocked look-up:
                # its accounts are not locked. Start again rather than lock out of order.
                raise _StaleLockSet
            failed = await store.load_failed(connection, {r.id for r in flat} - set(known))
            now_us = self._clock()
            engine = TransferEngine(locked, known, failed, now_us)
            results = [engine.apply(batch) for batch in group]
            if engine.changes.empty:
                return results, ""
            batch_id = ids.new_id("batch")
            await store.commit_changes(connection, engine.changes, batch_id, now_us)
            return results, batch_id

        return await self._in_transaction(work)

    async def expire_pending(self, limit: int = 0) -> list[str]:
        """Release pending transfers whose timeout has passed (at most `limit`, 0 = 1,000)."""
        if limit < 0 or limit > BATCH_SIZE_MAX:
            raise errors.InvalidArgument(
                "limit must be between 0 and 1000",
                reason="INVALID_LIMIT",
                field_violations=[errors.FieldViolation("limit", "between 0 and 1000")],
            )
        limit = limit or EXPIRE_LIMIT_DEFAULT

        async def work(connection: AsyncConnection) -> list[str]:
            now_us = self._clock()
            candidates = (
                await connection.execute(
                    sa.select(transfers.c.id, transfers.c.debit_account_id, transfers.c.credit_account_id)
                    .where(
                        transfers.c.state == int(TransferState.PENDING),
                        transfers.c.expires_at_us > 0,
                        transfers.c.expires_at_us <= now_us,
                    )
                    .order_by(transfers.c.expires_at_us, transfers.c.id)
                    .limit(limit)
                )
            ).all()
            if not candidates:
                return []
            account_ids = {row.debit_account_id for row in candidates} | {
                row.credit_account_id for row in candidates
            }
            locked = await store.lock_accounts(connection, account_ids)
            known = await store.load_transfers(connection, [row.id for row in candidates])
            engine = TransferEngine(locked, known, {}, now_us)
            released = engine.expire([row.id for row in candidates])
            if released:
                await store.commit_changes(connection, engine.changes, ids.new_id("batch"), now_us)
            return released

        return await self._in_transaction(work)

    # -- reads ---------------------------------------------------------------------------------

    async def lookup_accounts(self, account_ids: Sequence[str]) -> list[Account]:
        """Accounts found, in request order."""
        _check_batch_size(len(account_ids), "ids")
        async with self._engine.connect() as connection:
            found = await store.load_accounts(connection, account_ids)
        return [found[i] for i in account_ids if i in found]

    async def lookup_transfers(self, transfer_ids: Sequence[str]) -> list[Transfer]:
        """Transfers found, in request order."""
        _check_batch_size(len(transfer_ids), "ids")
        async with self._engine.connect() as connection:
            found = await store.load_transfers(connection, transfer_ids)
        return [found[i] for i in transfer_ids if i in found]

    async def list_entries(
        self,
        account_id: str,
        *,
        limit: int = 0,
        starting_after: str = "",
        created_after_us: int | None = None,
        created_before_us: int | None = None,
        descending: bool = False,
    ) -> tuple[list[EntryView], bool]:
        """One page of an account's history and whether more follows."""
        violations = []
        if limit < 0 or limit > PAGE_SIZE_MAX:
            violations.append(errors.FieldViolation("limit", f"between 0 and {PAGE_SIZE_MAX}"))
        cursor: int | None = None
        if starting_after:
            if not starting_after.isdigit() or len(starting_after) > 19:
                violations.append(errors.FieldViolation("starting_after", "an entry id"))
            else:
                cursor = int(starting_after)
        if violations:
            raise errors.InvalidArgument(
                "invalid page request", reason="INVALID_PAGE", field_violations=violations
            )
        page_size = limit or PAGE_SIZE_DEFAULT
        async with self._engine.connect() as connection:
            account = (await store.load_accounts(connection, [account_id])).get(account_id)
            if account is None:
                raise errors.NotFound(f"account {account_id!r} does not exist", reason="ACCOUNT_NOT_FOUND")
            statement = (
                sa.select(entries, transfers.c.code, transfers.c.metadata.label("transfer_metadata"))
                .join(transfers, transfers.c.id == entries.c.transfer_id)
                .where(entries.c.account_id == account_id)
            )
            if cursor is not None:
                statement = statement.where(entries.c.seq < cursor if descending else entries.c.seq > cursor)
            if created_after_us is not None:
                statement = statement.where(entries.c.created_at_us >= created_after_us)
            if created_before_us is not None:
                statement = statement.where(entries.c.created_at_us < created_before_us)
            order = entries.c.seq.desc() if descending else entries.c.seq.asc()
            rows = (await connection.execute(statement.order_by(order).limit(page_size + 1))).all()
        views = [
            EntryView(
                seq=row.seq,
                entry=store.entry_from_row(row),
                currency=account.currency,
                created_at_us=row.created_at_us,
                code=row.code,
                metadata=store.load_metadata(row.transfer_metadata),
            )
            for row in rows[:page_size]
        ]
        return views, len(rows) > page_size

    # -- audits --------------------------------------------------------------------------------

    async def check_invariants(self) -> InvariantReport:
        """Check every invariant in one consistent snapshot.

        The database does the sums and returns only offending rows (at most
        VIOLATIONS_REPORTED_MAX per invariant), so the check's memory does not grow with the ledger.
        """
        violations: list[Violation] = []
        async with self._engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                await connection.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
            account_count = int(
                (await connection.execute(sa.select(sa.func.count()).select_from(accounts))).scalar_one()
            )
            transfer_count = int(
                (await connection.execute(sa.select(sa.func.count()).select_from(transfers))).scalar_one()
            )
            totals = sa.select(
                accounts.c.currency,
                sa.func.sum(accounts.c.debits_posted),
                sa.func.sum(accounts.c.credits_posted),
                sa.func.sum(accounts.c.debits_pending),
                sa.func.sum(accounts.c.credits_pending),
            ).group_by(accounts.c.currency)
            for currency, debits, credits, debits_pending, credits_pending in (
                await connection.execute(totals.order_by(accounts.c.currency))
            ).all():
                if int(debits) != int(credits):
                    violations.append(
                        Violation(
                            "debits_equal_credits_posted",
                            "",
                            f"{currency}: debits {debits} != credits {credits}",
                        )
                    )
                if int(debits_pending) != int(credits_pending):
                    violations.append(
                        Violation(
                            "debits_equal_credits_pending",
                            "",
                            f"{currency}: pending debits {debits_pending} "
                            f"!= pending credits {credits_pending}",
                        )
                    )
            violations.extend(await self._overdrawn(connection))
            violations.extend(await self._entries_mismatch(connection))
            violations.extend(await self._pending_mismatch(connection))
        return InvariantReport(INVARIANTS, tuple(violations), account_count, transfer_count)

    @staticmethod
    async def _overdrawn(connection: AsyncConnection) -> list[Violation]:
        a = accounts.c
        statement = (
            sa.select(accounts)
            .where(
                sa.or_(
                    sa.and_(a.flags.op("&")(1) != 0, a.debits_posted + a.debits_pending > a.credits_posted),
                    sa.and_(a.flags.op("&")(2) != 0, a.credits_posted + a.credits_pending > a.debits_posted),
                )
            )
            .order_by(a.id)
            .limit(VIOLATIONS_REPORTED_MAX)
        )
        return [
            Violation(
                "flag_overdrawn",
                row.id,
                f"debits {row.debits_posted} + pending {row.debits_pending}, "
                f"credits {row.credits_posted} + pending {row.credits_pending}",
            )
            for row in (await connection.execute(statement)).all()
        ]

    @staticmethod
    async def _entries_mismatch(connection: AsyncConnection) -> list[Violation]:
        e = entries.c

        def total(side: EntrySide, kind: EntryKind) -> sa.ColumnElement[int]:
            return sa.func.coalesce(
                sa.func.sum(sa.case((sa.and_(e.side == int(side), e.kind == int(kind)), e.amount), else_=0)),
                0,
            )

        sums = (
            sa.select(
                e.account_id.label("account_id"),
                total(EntrySide.DEBIT, EntryKind.POSTED).label("dp"),
                total(EntrySide.CREDIT, EntryKind.POSTED).label("cp"),
                (
                    total(EntrySide.DEBIT, EntryKind.PENDING) - total(EntrySide.DEBIT, EntryKind.RELEASED)
                ).label("dpend"),
                (
                    total(EntrySide.CREDIT, EntryKind.PENDING) - total(EntrySide.CREDIT, EntryKind.RELEASED)
                ).label("cpend"),
            )
            .group_by(e.account_id)
            .subquery()
        )
        a = accounts.c
        columns = (
            sa.func.coalesce(sums.c.dp, 0),
            sa.func.coalesce(sums.c.cp, 0),
            sa.func.coalesce(sums.c.dpend, 0),
            sa.func.coalesce(sums.c.cpend, 0),
        )
        statement = (
            sa.select(a.id, a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending, *columns)
            .select_from(accounts.outerjoin(sums, sums.c.account_id == a.id))
            .where(
                sa.or_(
                    a.debits_posted != columns[0],
                    a.credits_posted != columns[1],
                    a.debits_pending != columns[2],
                    a.credits_pending != columns[3],
                )
            )
            .order_by(a.id)
            .limit(VIOLATIONS_REPORTED_MAX)
        )
        return [
            Violation(
                "balance_equals_entries",
                row[0],
                f"sums (debits, credits, pending debits, pending credits) {tuple(row[1:5])} "
                f"vs entries {tuple(int(v) for v in row[5:9])}",
            )
            for row in (await connection.execute(statement)).all()
        ]

    @staticmethod
    async def _pending_mismatch(connection: AsyncConnection) -> list[Violation]:
        t = transfers.c
        open_state = t.state == int(TransferState.PENDING)
        sides = sa.union_all(
            sa.select(
                t.debit_account_id.label("account_id"), t.amount.label("debit"), sa.literal(0).label("credit")
            ).where(open_state),
            sa.select(
                t.credit_account_id.label("account_id"),
                sa.literal(0).label("debit"),
                t.amount.label("credit"),
            ).where(open_state),
        ).subquery()
        reserved = (
            sa.select(
                sides.c.account_id,
                sa.func.sum(sides.c.debit).label("debit"),
                sa.func.sum(sides.c.credit).label("credit"),
            )
            .group_by(sides.c.account_id)
            .subquery()
        )
        a = accounts.c
        debit, credit = sa.func.coalesce(reserved.c.debit, 0), sa.func.coalesce(reserved.c.credit, 0)
        statement = (
            sa.select(a.id, a.debits_pending, a.credits_pending, debit, credit)
            .select_from(accounts.outerjoin(reserved, reserved.c.account_id == a.id))
            .where(sa.or_(a.debits_pending != debit, a.credits_pending != credit))
            .order_by(a.id)
            .limit(VIOLATIONS_REPORTED_MAX)
        )
        return [
            Violation(
                "pending_equals_open_transfers",
                row[0],
                f"pending debits {row[1]} / credits {row[2]} "
                f"vs open pending transfers {int(row[3])} / {int(row[4])}",
            )
            for row in (await connection.execute(statement)).all()
        ]

    async def verify_chain(self) -> ChainReport:
        """Recompute every batch's link, oldest first; stop at the first broken one."""
        previous = GENESIS_HASH
        checked = 0
        async with self._engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                await connection.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
            last_seq = int(
                (
                    await connection.execute(sa.select(sa.func.coalesce(sa.func.max(batches.c.seq), 0)))
                ).scalar_one()
            )
            # Chunk by chunk, so memory stays bounded however long the chain is.
            for first in range(1, last_seq + 1, VERIFY_CHUNK_BATCHES):
                last = min(last_seq, first + VERIFY_CHUNK_BATCHES - 1)
                stored = {
                    row.seq: row
                    for row in (
                        await connection.execute(sa.select(batches).where(batches.c.seq.between(first, last)))
                    ).all()
                }
                contents = await store.batch_contents(connection, first, last)
                for seq in range(first, last + 1):
                    batch = stored.get(seq)
                    if batch is None:
                        return ChainReport(False, checked, f"#{seq}", f"batch number {seq} is missing")
                    if batch.previous_hash != previous:
                        return ChainReport(
                            False, checked, batch.id, "previous_hash does not match the prior batch"
                        )
                    content = contents.get(seq)
                    if content is None or batch_hash(previous, content) != batch.hash:
                        return ChainReport(
                            False, checked, batch.id, "content does not hash to the stored link"
                        )
                    previous = batch.hash
                    checked += 1
            orphans = [seq for seq in await self._rows_outside_batches(connection, last_seq)]
            if orphans:
                return ChainReport(
                    False, checked, f"#{orphans[0]}", "rows refer to a batch that does not exist"
                )
        return ChainReport(True, checked, "", f"{checked} batches verified")

    @staticmethod
    async def _rows_outside_batches(connection: AsyncConnection, last_seq: int) -> list[int]:
        """Batch numbers used by rows but beyond the chain (rows inserted behind its back)."""
        found: set[int] = set()
        for table in (accounts, transfers, entries):
            for row in (
                await connection.execute(
                    sa.select(table.c.batch_seq).where(table.c.batch_seq > last_seq).limit(1)
                )
            ).all():
                found.add(int(row[0]))
        return sorted(found)
