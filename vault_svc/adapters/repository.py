"""SQL access of the vault: tokens, key versions/state and the chained access log.

Every function takes the caller's connection, so a handler composes them in one transaction.
Lock order, everywhere: access-log head → key state → token rows (no deadlocks between writers).
The hot-path statements are built once at import: SQLAlchemy memoizes a statement object's cache
key, so executing a module constant skips both construction and cache-key generation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from vault_svc.adapters.orm import access_log, access_log_head, key_state, key_versions, tokens
from vault_svc.domain.access_log import Entry, EntryDraft, chain
from vault_svc.domain.cards import Brand
from vault_svc.domain.model import KeyStatus, TokenRecord

HEAD_ID = 1
KEY_STATE_ID = 1

# One round trip at the start of every write transaction: lock the log head (FOR UPDATE OF the
# head only; SQLite renders no FOR UPDATE, its BEGIN IMMEDIATE already serialises writers) and
# read the key state the transaction's operations need (current and minimum version).
_LOCK_HEAD_WITH_KEY_STATE = (
    sa.select(
        access_log_head.c.last_sequence,
        access_log_head.c.last_hash,
        sa.select(key_state.c.min_decryption_version)
        .where(key_state.c.id == KEY_STATE_ID)
        .scalar_subquery()
        .label("min_decryption_version"),
        sa.select(sa.func.max(key_versions.c.version)).scalar_subquery().label("current_version"),
    )
    .where(access_log_head.c.id == HEAD_ID)
    .with_for_update(of=access_log_head)
)
_TOKENS_BY_ID = sa.select(tokens).where(tokens.c.token.in_(sa.bindparam("b_tokens", expanding=True)))
_INSERT_TOKEN = tokens.insert()
_INSERT_ENTRY = access_log.insert()
_MOVE_HEAD = (
    access_log_head.update()
    .where(access_log_head.c.id == HEAD_ID)
    .values(last_sequence=sa.bindparam("b_sequence"), last_hash=sa.bindparam("b_hash"))
)


# --- access log ------------------------------------------------------------------------------


async def lock_head(connection: AsyncConnection) -> tuple[int, str]:
    """Lock the log head (FOR UPDATE; SQLite's BEGIN IMMEDIATE already serialises) and read it."""
    row = (
        await connection.execute(
            sa.select(access_log_head.c.last_sequence, access_log_head.c.last_hash)
            .where(access_log_head.c.id == HEAD_ID)
            .with_for_update()
        )
    ).one()
    return int(row.last_sequence), str(row.last_hash)


async def lock_head_with_key_state(connection: AsyncConnection) -> tuple[tuple[int, str], int, int]:
    """Lock and read the log head; read (current key version, minimum decryption version)."""
    row = (await connection.execute(_LOCK_HEAD_WITH_KEY_STATE)).one()
    return (
        (int(row.last_sequence), str(row.last_hash)),
        int(row.current_version or 0),
        int(row.min_decryption_version),
    )


async def read_head(connection: AsyncConnection) -> tuple[int, str]:
    """Read the log head without locking it."""
    row = (
        await connection.execute(
            sa.select(access_log_head.c.last_sequence, access_log_head.c.last_hash).where(
                access_log_head.c.id == HEAD_ID
            )
        )
    ).one()
    return int(row.last_sequence), str(row.last_hash)


async def append(
    connection: AsyncConnection, head: tuple[int, str], drafts: Sequence[EntryDraft], now_us: int
) -> list[Entry]:
    """Chain `drafts` after the locked `head`, insert them and move the head."""
    sequence, previous_hash = head
    entries: list[Entry] = []
    for draft in drafts:
        sequence += 1
        entry = chain(draft, sequence=sequence, created_at_us=now_us, previous_hash=previous_hash)
        entries.append(entry)
        previous_hash = entry.hash
    if not entries:
        return entries
    await connection.execute(_INSERT_ENTRY, [_entry_row(e) for e in entries])
    await connection.execute(_MOVE_HEAD, {"b_sequence": sequence, "b_hash": previous_hash})
    return entries


def _entry_row(entry: Entry) -> dict[str, Any]:
    return {
        "sequence": entry.sequence,
        "created_at_us": entry.created_at_us,
        "actor_service": entry.actor_service,
        "merchant_id": entry.merchant_id,
        "principal": entry.principal,
        "action": entry.action,
        "token": entry.token,
        "purpose": entry.purpose,
        "outcome": entry.outcome,
        "trace_id": entry.trace_id,
        "reference": entry.reference,
        "previous_hash": entry.previous_hash,
        "hash": entry.hash,
    }


def _entry(row: sa.Row[Any]) -> Entry:
    return Entry(
        sequence=int(row.sequence),
        created_at_us=int(row.created_at_us),
        actor_service=row.actor_service,
        merchant_id=row.merchant_id,
        principal=row.principal,
        action=row.action,
        token=row.token,
        purpose=row.purpose,
        outcome=row.outcome,
        trace_id=row.trace_id,
        reference=row.reference,
        previous_hash=row.previous_hash,
        hash=row.hash,
    )


async def list_entries(
    connection: AsyncConnection,
    *,
    limit: int,
    before_sequence: int | None,
    token: str | None,
    action: str | None,
    actor_service: str | None,
    merchant_id: str | None,
) -> list[Entry]:
    """Entries newest first, filtered; at most `limit`."""
    query = sa.select(access_log).order_by(access_log.c.sequence.desc()).limit(limit)
    if before_sequence is not None:
        query = query.where(access_log.c.sequence < before_sequence)
    if token:
        query = query.where(access_log.c.token == token)
    if action:
        query = query.where(access_log.c.action == action)
    if actor_service:
        query = query.where(access_log.c.actor_service == actor_service)
    if merchant_id:
        query = query.where(access_log.c.merchant_id == merchant_id)
    return [_entry(row) for row in (await connection.execute(query)).all()]


async def entries_after(
    connection: AsyncConnection, after_sequence: int, up_to_sequence: int, limit: int
) -> list[Entry]:
    """Entries in sequence order after `after_sequence`, up to `up_to_sequence`, at most `limit`."""
    query = (
        sa.select(access_log)
        .where(access_log.c.sequence > after_sequence, access_log.c.sequence <= up_to_sequence)
        .order_by(access_log.c.sequence)
        .limit(limit)
    )
    return [_entry(row) for row in (await connection.execute(query)).all()]


# --- keys ------------------------------------------------------------------------------------


async def key_checks(connection: AsyncConnection) -> dict[int, str]:
    """Every registered key version with its key check value."""
    rows = (await connection.execute(sa.select(key_versions.c.version, key_versions.c.key_check))).all()
    return {int(row.version): str(row.key_check) for row in rows}


async def current_version(connection: AsyncConnection) -> int:
    """Highest registered key version (0 before the first)."""
    value = (await connection.execute(sa.select(sa.func.max(key_versions.c.version)))).scalar()
    return int(value or 0)


async def add_key_version(connection: AsyncConnection, version: int, key_check: str, now_us: int) -> None:
    """Register a key version."""
    await connection.execute(
        key_versions.insert().values(version=version, key_check=key_check, created_at_us=now_us)
    )


async def min_decryption_version(connection: AsyncConnection) -> int:
    """The minimum decryption version in force."""
    value = (
        await connection.execute(
            sa.select(key_state.c.min_decryption_version).where(key_state.c.id == KEY_STATE_ID)
        )
    ).scalar_one()
    return int(value)


async def set_min_decryption_version(connection: AsyncConnection, version: int) -> None:
    """Record a new minimum decryption version."""
    await connection.execute(
        key_state.update().where(key_state.c.id == KEY_STATE_ID).values(min_decryption_version=version)
    )


async def key_status(connection: AsyncConnection) -> KeyStatus:
    """Versions, live records per version, current and minimum version."""
    counts = {version: 0 for version in await key_checks(connection)}
    rows = (
        await connection.execute(
            sa.select(tokens.c.key_version, sa.func.count())
            .where(tokens.c.deleted_at_us.is_(None))
            .group_by(tokens.c.key_version)
        )
    ).all()
    for version, count in rows:
        counts[int(version)] = int(count)
    return KeyStatus(
        current_version=max(counts, default=0),
        min_decryption_version=await min_decryption_version(connection),
        records_per_version=counts,
    )


# --- tokens ----------------------------------------------------------------------------------


def _record(row: sa.Row[Any]) -> TokenRecord:
    return TokenRecord(
        token=row.token,
        merchant_id=row.merchant_id,
        brand=Brand(row.brand),
        first6=row.first6,
        last4=row.last4,
        exp_month=int(row.exp_month),
        exp_year=int(row.exp_year),
        fingerprint=row.fingerprint,
        cardholder_name=row.cardholder_name,
        country=row.country,
        key_version=int(row.key_version),
        created_at_us=int(row.created_at_us),
        wrapped_key=bytes(row.wrapped_key) if row.wrapped_key is not None else None,
        ciphertext=bytes(row.ciphertext) if row.ciphertext is not None else None,
        deleted_at_us=int(row.deleted_at_us) if row.deleted_at_us is not None else None,
    )


def _token_row(record: TokenRecord) -> dict[str, Any]:
    return {
        "token": record.token,
        "merchant_id": record.merchant_id,
        "brand": record.brand.value,
        "first6": record.first6,
        "last4": record.last4,
        "exp_month": record.exp_month,
        "exp_year": record.exp_year,
        "fingerprint": record.fingerprint,
        "cardholder_name": record.cardholder_name,
        "country": record.country,
        "key_version": record.key_version,
        "wrapped_key": record.wrapped_key,
        "ciphertext": record.ciphertext,
        "created_at_us": record.created_at_us,
        "deleted_at_us": None,
    }


async def insert_token(connection: AsyncConnection, record: TokenRecord) -> None:
    """Store a new token."""
    await connection.execute(_INSERT_TOKEN, _token_row(record))


async def insert_tokens(connection: AsyncConnection, records: Sequence[TokenRecord]) -> None:
    """Store new tokens in one statement (executemany)."""
    if records:
        await connection.execute(_INSERT_TOKEN, [_token_row(record) for record in records])


async def get_token(connection: AsyncConnection, token: str) -> TokenRecord | None:
    """A token by id (live or shredded), or None."""
    return (await get_tokens(connection, [token])).get(token)


async def get_tokens(connection: AsyncConnection, token_ids: Iterable[str]) -> dict[str, TokenRecord]:
    """Tokens by id (live or shredded) in one query; absent ids are missing from the result."""
    wanted = list(token_ids)
    if not wanted:
        return {}
    rows = (await connection.execute(_TOKENS_BY_ID, {"b_tokens": wanted})).all()
    return {row.token: _record(row) for row in rows}


async def find_live_duplicate(
    connection: AsyncConnection, merchant_id: str, fingerprint: str, exp_month: int, exp_year: int
) -> TokenRecord | None:
    """The oldest live token of this merchant for the same card and expiry, if any."""
    row = (
        await connection.execute(
            sa.select(tokens)
            .where(
                tokens.c.merchant_id == merchant_id,
                tokens.c.fingerprint == fingerprint,
                tokens.c.exp_month == exp_month,
                tokens.c.exp_year == exp_year,
                tokens.c.deleted_at_us.is_(None),
            )
            .order_by(tokens.c.token)
            .limit(1)
        )
    ).first()
    return _record(row) if row is not None else None


async def shred(connection: AsyncConnection, token: str, now_us: int) -> bool:
    """Destroy a live token's data key and ciphertext; False when it was already shredded."""
    result = await connection.execute(
        tokens.update()
        .where(tokens.c.token == token, tokens.c.deleted_at_us.is_(None))
        .values(wrapped_key=None, ciphertext=None, deleted_at_us=now_us)
    )
    return bool(result.rowcount)


async def live_below(connection: AsyncConnection, version: int, limit: int) -> list[TokenRecord]:
    """Up to `limit` live tokens wrapped under a version lower than `version`."""
    rows = (
        await connection.execute(
            sa.select(tokens)
            .where(tokens.c.deleted_at_us.is_(None), tokens.c.key_version < version)
            .order_by(tokens.c.token)
            .limit(limit)
        )
    ).all()
    return [_record(row) for row in rows]


async def store_rewrapped(
    connection: AsyncConnection, updates: Iterable[tuple[str, int, int, bytes]]
) -> None:
    """Apply (token, old version, new version, wrapped key) re-wraps, guarded by the old version."""
    parameters = [
        {"b_token": token, "b_old": old, "b_new": new, "b_wrapped": wrapped}
        for token, old, new, wrapped in updates
    ]
    if not parameters:
        return
    await connection.execute(
        tokens.update()
        .where(tokens.c.token == sa.bindparam("b_token"), tokens.c.key_version == sa.bindparam("b_old"))
        .values(key_version=sa.bindparam("b_new"), wrapped_key=sa.bindparam("b_wrapped")),
        parameters,
    )
