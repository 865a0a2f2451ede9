"""Storage of the ledger: loading a batch's working set under lock, and committing its changes.

Concurrency protocol (the same on every replica, so no two writers can deadlock):

1. read the accounts of the pending transfers a batch resolves (no lock, just to learn them);
2. lock every touched account, in id order (`SELECT … ORDER BY id FOR UPDATE` on PostgreSQL;
   SQLite's `BEGIN IMMEDIATE` already serializes writers);
3. read the batch's transfers, pending transfers and failed ids (stable now: changing any of
   them requires a lock on one of the accounts we hold);
4. let the pure engine decide, then lock the chain head (always last, held only for the
   inserts and the commit), number the entries and the batch, hash, write, commit.

A unique-key race between replicas (two first-time writers of the same id that touch disjoint
accounts) surfaces as an IntegrityError and the caller retries the whole transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger_svc.adapters.orm import accounts, batches, chain_head, entries, failed_transfers, transfers
from ledger_svc.domain.chain import BatchContent, batch_hash
from ledger_svc.domain.engine import Changes
from ledger_svc.domain.model import (
    Account,
    AccountType,
    Entry,
    EntryKind,
    EntrySide,
    Transfer,
    TransferResult,
    TransferState,
)

_EMPTY_METADATA = "{}"

# Statements run by every grouped write, built once (constructing a Core statement and hashing
# its structure to find the compiled form is per-call CPU the database work does not need).
_CHAIN_HEAD = sa.select(chain_head).where(chain_head.c.id == 1)
_CHAIN_HEAD_FOR_UPDATE = _CHAIN_HEAD.with_for_update()
_UPDATE_CHAIN_HEAD = chain_head.update().where(chain_head.c.id == 1)
_INSERT_ACCOUNTS = accounts.insert()
_INSERT_FAILED = failed_transfers.insert()
_INSERT_BATCH = batches.insert()
_UPDATE_TRANSFER_STATES = (
    transfers.update()
    .where(transfers.c.id == sa.bindparam("b_id"))
    .values(state=sa.bindparam("b_state"), amount_posted=sa.bindparam("b_posted"))
)
_UPDATE_ACCOUNT_SUMS = (
    accounts.update()
    .where(accounts.c.id == sa.bindparam("b_id"))
    .values(
        debits_posted=sa.bindparam("b_dp"),
        credits_posted=sa.bindparam("b_cp"),
        debits_pending=sa.bindparam("b_dpend"),
        credits_pending=sa.bindparam("b_cpend"),
    )
)


def dump_metadata(metadata: dict[str, str]) -> str:
    """Canonical JSON of a metadata map."""
    if not metadata:
        return _EMPTY_METADATA
    return json.dumps(metadata, sort_keys=True, separators=(",", ":"))


def load_metadata(text: str) -> dict[str, str]:
    """The metadata map back from its JSON."""
    if text == _EMPTY_METADATA:
        return {}
    loaded: dict[str, str] = json.loads(text)
    return loaded


def account_from_row(row: Any) -> Account:
    """An Account from an `accounts` row."""
    return Account(
        id=row.id,
        currency=row.currency,
        type=AccountType(row.type),
        code=row.code,
        debits_must_not_exceed_credits=bool(row.flags & 1),
        credits_must_not_exceed_debits=bool(row.flags & 2),
        metadata=load_metadata(row.metadata),
        created_at_us=row.created_at_us,
        debits_posted=row.debits_posted,
        credits_posted=row.credits_posted,
        debits_pending=row.debits_pending,
        credits_pending=row.credits_pending,
    )


def transfer_from_row(row: Any) -> Transfer:
    """A Transfer from a `transfers` row."""
    flags = row.flags
    return Transfer(
        id=row.id,
        debit_account_id=row.debit_account_id,
        credit_account_id=row.credit_account_id,
        amount=row.amount,
        currency=row.currency,
        code=row.code,
        linked=bool(flags & 1),
        pending=bool(flags & 2),
        post_pending_transfer=bool(flags & 4),
        void_pending_transfer=bool(flags & 8),
        pending_id=row.pending_id,
        timeout_seconds=row.timeout_seconds,
        metadata=load_metadata(row.metadata),
        state=TransferState(row.state),
        created_at_us=row.created_at_us,
        expires_at_us=row.expires_at_us,
        amount_posted=row.amount_posted,
    )


def entry_from_row(row: Any) -> Entry:
    """An Entry from an `entries` row."""
    return Entry(
        transfer_id=row.transfer_id,
        account_id=row.account_id,
        side=EntrySide(row.side),
        kind=EntryKind(row.kind),
        amount=row.amount,
        balance_after=row.balance_after,
    )


def _among(
    connection: AsyncConnection, column: sa.ColumnElement[str], ids: list[str]
) -> sa.ColumnElement[bool]:
    """`column IN ids`: one array parameter on PostgreSQL (one cached plan whatever the count)."""
    if connection.dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam("ids_array", ids, type_=postgresql.ARRAY(sa.String)))
    return column.in_(ids)


async def _rows_by_id(connection: AsyncConnection, table: sa.Table, ids: list[str]) -> Sequence[Any]:
    """Rows of `table` (one of ours: its name is not user input) whose key `id` is in `ids`.

    On PostgreSQL each id is probed through the primary-key index (a LATERAL lookup per id):
    with `id = ANY(…)` the planner picks a sequential scan whenever its statistics lag behind a
    fast-growing table (a fresh or bulk-loaded ledger), and the cost then grows with the table.
    """
    if connection.dialect.name == "postgresql":
        statement = sa.text(
            f"SELECT found.* FROM unnest(CAST(:ids AS varchar[])) AS wanted(id) "
            f"CROSS JOIN LATERAL (SELECT * FROM {table.name} WHERE {table.name}.id = wanted.id) AS found"
        ).bindparams(sa.bindparam("ids", ids, type_=postgresql.ARRAY(sa.String)))
        return (await connection.execute(statement)).all()
    return (await connection.execute(sa.select(table).where(table.c.id.in_(ids)))).all()


_TRANSFER_COLUMNS = (
    "id",
    "debit_account_id",
    "credit_account_id",
    "amount",
    "currency",
    "code",
    "flags",
    "pending_id",
    "timeout_seconds",
    "expires_at_us",
    "metadata",
    "state",
    "amount_posted",
    "created_at_us",
    "batch_seq",
)
_ENTRY_COLUMNS = (
    "seq",
    "transfer_id",
    "account_id",
    "side",
    "kind",
    "amount",
    "balance_after",
    "created_at_us",
    "batch_seq",
)


async def _insert_rows(
    connection: AsyncConnection, table: sa.Table, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """Insert many rows of plain ints and strings straight through the driver's executemany.

    The ledger's columns have no type processing, and SQLAlchemy's per-row parameter processing
    of an executemany was the largest per-transfer cost of a batch. `table` is one of ours and
    the column names are constants: nothing here is user input.
    """
    if connection.dialect.paramstyle == "numeric_dollar":  # asyncpg
        marks = ", ".join(f"${number}" for number in range(1, len(columns) + 1))
    else:  # sqlite's qmark
        marks = ", ".join("?" for _ in columns)
    statement = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})"
    await connection.exec_driver_sql(statement, rows)


def _account_flags(account: Account) -> int:
    return int(account.debits_must_not_exceed_credits) | int(account.credits_must_not_exceed_debits) << 1


async def lock_accounts(connection: AsyncConnection, account_ids: Iterable[str]) -> dict[str, Account]:
    """Load and lock the named accounts in id order (the global lock order)."""
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    statement = sa.select(accounts).where(_among(connection, accounts.c.id, ids)).order_by(accounts.c.id)
    if connection.dialect.name == "postgresql":
        statement = statement.with_for_update()
    rows = (await connection.execute(statement)).all()
    return {row.id: account_from_row(row) for row in rows}


async def load_transfers(connection: AsyncConnection, transfer_ids: Iterable[str]) -> dict[str, Transfer]:
    """Transfers by id (unknown ids are absent)."""
    ids = list(set(transfer_ids))
    if not ids:
        return {}
    return {row.id: transfer_from_row(row) for row in await _rows_by_id(connection, transfers, ids)}


async def load_failed(connection: AsyncConnection, transfer_ids: Iterable[str]) -> dict[str, TransferResult]:
    """Ids refused before, with the result that burnt them."""
    ids = list(set(transfer_ids))
    if not ids:
        return {}
    rows = await _rows_by_id(connection, failed_transfers, ids)
    return {row.id: TransferResult(row.result) for row in rows}


async def pending_accounts(connection: AsyncConnection, pending_ids: Iterable[str]) -> set[str]:
    """Account ids of the named transfers (read without a lock, only to know what to lock)."""
    ids = list(set(pending_ids))
    if not ids:
        return set()
    found: set[str] = set()
    for row in await _rows_by_id(connection, transfers, ids):
        found.add(row.debit_account_id)
        found.add(row.credit_account_id)
    return found


async def load_accounts(connection: AsyncConnection, account_ids: Sequence[str]) -> dict[str, Account]:
    """Accounts by id, without locking (reads)."""
    ids = list(set(account_ids))
    if not ids:
        return {}
    return {row.id: account_from_row(row) for row in await _rows_by_id(connection, accounts, ids)}


async def commit_changes(
    connection: AsyncConnection, changes: Changes, batch_id: str, now_us: int
) -> tuple[int, str]:
    """Write a batch's changes and its chain link; return (batch sequence, batch hash).

    Must be the last step of the transaction: it takes the chain-head lock, which every writer
    takes last, so holding it never waits on an account lock.
    """
    head_statement = _CHAIN_HEAD_FOR_UPDATE if connection.dialect.name == "postgresql" else _CHAIN_HEAD
    head = (await connection.execute(head_statement)).one()
    batch_seq = head.batch_seq + 1
    first_entry_seq = head.entry_seq + 1
    numbered = [(first_entry_seq + offset, entry) for offset, entry in enumerate(changes.entries)]
    content = BatchContent(
        batch_id=batch_id,
        created_at_us=now_us,
        accounts=changes.new_accounts,
        transfers=changes.new_transfers,
        failures=changes.failures,
        entries=numbered,
    )
    link = batch_hash(head.hash, content)

    if changes.new_accounts:
        await connection.execute(
            _INSERT_ACCOUNTS,
            [
                {
                    "id": account.id,
                    "currency": account.currency,
                    "type": int(account.type),
                    "code": account.code,
                    "flags": _account_flags(account),
                    "metadata": dump_metadata(account.metadata),
                    "debits_posted": 0,
                    "credits_posted": 0,
                    "debits_pending": 0,
                    "credits_pending": 0,
                    "created_at_us": account.created_at_us,
                    "batch_seq": batch_seq,
                }
                for account in changes.new_accounts
            ],
        )
    if changes.new_transfers:
        await _insert_rows(
            connection,
            transfers,
            _TRANSFER_COLUMNS,
            [
                (
                    transfer.id,
                    transfer.debit_account_id,
                    transfer.credit_account_id,
                    transfer.amount,
                    transfer.currency,
                    transfer.code,
                    transfer.flags_bits,
                    transfer.pending_id,
                    transfer.timeout_seconds,
                    transfer.expires_at_us,
                    dump_metadata(transfer.metadata),
                    int(transfer.state),
                    transfer.amount_posted,
                    transfer.created_at_us,
                    batch_seq,
                )
                for transfer in changes.new_transfers
            ],
        )
    if changes.failures:
        await connection.execute(
            _INSERT_FAILED,
            [
                {"id": failed_id, "result": int(result), "batch_seq": batch_seq}
                for failed_id, result in changes.failures
            ],
        )
    if numbered:
        await _insert_rows(
            connection,
            entries,
            _ENTRY_COLUMNS,
            [
                (
                    sequence,
                    entry.transfer_id,
                    entry.account_id,
                    int(entry.side),
                    int(entry.kind),
                    entry.amount,
                    entry.balance_after,
                    now_us,
                    batch_seq,
                )
                for sequence, entry in numbered
            ],
        )
    new_ids = {transfer.id for transfer in changes.new_transfers}
    updated = [t for t in changes.updated_transfers.values() if t.id not in new_ids]
    if updated:
        await connection.execute(
            _UPDATE_TRANSFER_STATES,
            [{"b_id": t.id, "b_state": int(t.state), "b_posted": t.amount_posted} for t in updated],
        )
    if changes.touched_accounts:
        await connection.execute(
            _UPDATE_ACCOUNT_SUMS,
            [
                {
                    "b_id": a.id,
                    "b_dp": a.debits_posted,
                    "b_cp": a.credits_posted,
                    "b_dpend": a.debits_pending,
                    "b_cpend": a.credits_pending,
                }
                for a in changes.touched_accounts.values()
            ],
        )
    await connection.execute(
        _INSERT_BATCH,
        {"seq": batch_seq, "id": batch_id, "created_at_us": now_us, "previous_hash": head.hash, "hash": link},
    )
    await connection.execute(
        _UPDATE_CHAIN_HEAD,
        {"batch_seq": batch_seq, "entry_seq": head.entry_seq + len(numbered), "hash": link},
    )
    return batch_seq, link


async def batch_contents(
    connection: AsyncConnection, seq_first: int, seq_last: int
) -> dict[int, BatchContent]:
    """Rebuild the stored content of batches seq_first..seq_last (for VerifyChain)."""
    rows = (
        await connection.execute(
            sa.select(batches).where(batches.c.seq.between(seq_first, seq_last)).order_by(batches.c.seq)
        )
    ).all()
    parts: dict[int, dict[str, list[Any]]] = {
        row.seq: {"accounts": [], "transfers": [], "failures": [], "entries": []} for row in rows
    }
    for row in (
        await connection.execute(sa.select(accounts).where(accounts.c.batch_seq.between(seq_first, seq_last)))
    ).all():
        parts.setdefault(row.batch_seq, {"accounts": [], "transfers": [], "failures": [], "entries": []})
        parts[row.batch_seq]["accounts"].append(account_from_row(row))
    for row in (
        await connection.execute(
            sa.select(transfers).where(transfers.c.batch_seq.between(seq_first, seq_last))
        )
    ).all():
        parts.setdefault(row.batch_seq, {"accounts": [], "transfers": [], "failures": [], "entries": []})
        parts[row.batch_seq]["transfers"].append(transfer_from_row(row))
    for row in (
        await connection.execute(
            sa.select(failed_transfers).where(failed_transfers.c.batch_seq.between(seq_first, seq_last))
        )
    ).all():
        parts.setdefault(row.batch_seq, {"accounts": [], "transfers": [], "failures": [], "entries": []})
        parts[row.batch_seq]["failures"].append((row.id, row.result))
    for row in (
        await connection.execute(sa.select(entries).where(entries.c.batch_seq.between(seq_first, seq_last)))
    ).all():
        parts.setdefault(row.batch_seq, {"accounts": [], "transfers": [], "failures": [], "entries": []})
        parts[row.batch_seq]["entries"].append((row.seq, entry_from_row(row)))
    by_seq = {row.seq: row for row in rows}
    contents: dict[int, BatchContent] = {}
    for seq, part in parts.items():
        batch = by_seq.get(seq)
        contents[seq] = BatchContent(
            batch_id=batch.id if batch is not None else "",
            created_at_us=batch.created_at_us if batch is not None else 0,
            accounts=part["accounts"],
            transfers=part["transfers"],
            failures=part["failures"],
            entries=part["entries"],
        )
    return contents
