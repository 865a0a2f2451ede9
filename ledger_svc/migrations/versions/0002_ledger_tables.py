"""Ledger tables: accounts, transfers, failed ids, entries, batches and the chain head.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "accounts",
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
        sa.Column("batch_seq", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_accounts_batch_seq", "accounts", ["batch_seq"])
    op.create_table(
        "transfers",
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
        sa.Column("batch_seq", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_transfers_batch_seq", "transfers", ["batch_seq"])
    op.create_index("ix_transfers_pending_expiry", "transfers", ["state", "expires_at_us"])
    op.create_table(
        "failed_transfers",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("result", sa.SmallInteger, nullable=False),
        sa.Column("batch_seq", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_failed_transfers_batch_seq", "failed_transfers", ["batch_seq"])
    op.create_table(
        "entries",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("transfer_id", sa.String(128), nullable=False),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("side", sa.SmallInteger, nullable=False),
        sa.Column("kind", sa.SmallInteger, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("balance_after", sa.BigInteger, nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("batch_seq", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_entries_batch_seq", "entries", ["batch_seq"])
    op.create_index("ix_entries_account_seq", "entries", ["account_id", "seq"])
    op.create_table(
        "batches",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("id", sa.String(40), nullable=False, unique=True),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("previous_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    chain_head = op.create_table(
        "chain_head",
        sa.Column("id", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("batch_seq", sa.BigInteger, nullable=False),
        sa.Column("entry_seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(chain_head, [{"id": 1, "batch_seq": 0, "entry_seq": 0, "hash": "0" * 64}])


def downgrade() -> None:
    for table in ("chain_head", "batches", "entries", "failed_transfers", "transfers", "accounts"):
        op.drop_table(table)
