"""SQLAlchemy tables of the ledger service (its own metadata and migration history).

Times are integer microseconds since the epoch (portable between SQLite and PostgreSQL, exact,
and cheap to compare); amounts are BIGINT minor units.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("type", sa.SmallInteger, nullable=False),
    sa.Column("code", sa.Integer, nullable=False),
    sa.Column("flags", sa.SmallInteger, nullable=False),
    sa.Column("metadata", sa.Text, nullable=False),
    sa.Column("debits_posted", sa.BigInteger, nullable=False),
    sa.Column("credits_posted", sa.BigInteger, nullable=False),
    sa.Column("debits_pending", sa.BigInteger, nullable=False),
    sa.Column("credits_pending", sa.BigInteger, nullable=False),
    sa.Column("created_at_us", sa.BigInteger, nullable=False),
    sa.Column("batch_seq", sa.BigInteger, nullable=False, index=True),
)

transfers = sa.Table(
    "transfers",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("debit_account_id", sa.String(128), nullable=False),
    sa.Column("credit_account_id", sa.String(128), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("code", sa.Integer, nullable=False),
    sa.Column("flags", sa.SmallInteger, nullable=False),
    sa.Column("pending_id", sa.String(128), nullable=False),
    sa.Column("timeout_seconds", sa.BigInteger, nullable=False),
    sa.Column("expires_at_us", sa.BigInteger, nullable=False),
    sa.Column("metadata", sa.Text, nullable=False),
    sa.Column("state", sa.SmallInteger, nullable=False),
    sa.Column("amount_posted", sa.BigInteger, nullable=False),
    sa.Column("created_at_us", sa.BigInteger, nullable=False),
    sa.Column("batch_seq", sa.BigInteger, nullable=False, index=True),
    # The expiry worker scans pending transfers by deadline.
    sa.Index("ix_transfers_pending_expiry", "state", "expires_at_us"),
)

failed_transfers = sa.Table(
    "failed_transfers",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("result", sa.SmallInteger, nullable=False),
    sa.Column("batch_seq", sa.BigInteger, nullable=False, index=True),
)

entries = sa.Table(
    "entries",
    metadata,
    # Assigned by the writer under the chain-head lock, so the order is the commit order.
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("transfer_id", sa.String(128), nullable=False),
    sa.Column("account_id", sa.String(128), nullable=False),
    sa.Column("side", sa.SmallInteger, nullable=False),
    sa.Column("kind", sa.SmallInteger, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("balance_after", sa.BigInteger, nullable=False),
    sa.Column("created_at_us", sa.BigInteger, nullable=False),
    sa.Column("batch_seq", sa.BigInteger, nullable=False, index=True),
    sa.Index("ix_entries_account_seq", "account_id", "seq"),
)

batches = sa.Table(
    "batches",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("id", sa.String(40), nullable=False, unique=True),
    sa.Column("created_at_us", sa.BigInteger, nullable=False),
    sa.Column("previous_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

# One row: the head of the hash chain. Locking it serializes the (short) commit step of every
# writer across replicas, which is what makes entry and batch sequence numbers follow commit order.
chain_head = sa.Table(
    "chain_head",
    metadata,
    sa.Column("id", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("batch_seq", sa.BigInteger, nullable=False),
    sa.Column("entry_seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)
