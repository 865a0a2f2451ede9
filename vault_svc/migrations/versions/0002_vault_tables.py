"""Vault tables: tokens, key versions, key state, hash-chained access log and its head.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
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
        "vault_tokens",
        sa.Column("token", sa.String(64), primary_key=True),
        sa.Column("merchant_id", sa.String(64), nullable=False),
        sa.Column("brand", sa.String(16), nullable=False),
        sa.Column("first6", sa.String(6), nullable=False),
        sa.Column("last4", sa.String(4), nullable=False),
        sa.Column("exp_month", sa.Integer, nullable=False),
        sa.Column("exp_year", sa.Integer, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("cardholder_name", sa.String(200), nullable=True),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("key_version", sa.Integer, nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary, nullable=True),
        sa.Column("ciphertext", sa.LargeBinary, nullable=True),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("deleted_at_us", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_vault_tokens_merchant_fingerprint", "vault_tokens", ["merchant_id", "fingerprint"])
    op.create_index("ix_vault_tokens_key_version", "vault_tokens", ["key_version"])
    op.create_table(
        "vault_key_versions",
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("key_check", sa.String(32), nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "vault_key_state",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("min_decryption_version", sa.Integer, nullable=False),
    )
    op.create_table(
        "vault_access_log",
        sa.Column("sequence", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("actor_service", sa.String(64), nullable=False),
        sa.Column("merchant_id", sa.String(64), nullable=False),
        sa.Column("principal", sa.String(200), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("reference", sa.String(200), nullable=False),
        sa.Column("previous_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_vault_access_log_token", "vault_access_log", ["token"])
    op.create_index("ix_vault_access_log_merchant", "vault_access_log", ["merchant_id"])
    op.create_table(
        "vault_access_log_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("last_sequence", sa.BigInteger, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
    )
    # The singleton rows exist from the start, so appenders can always lock them.
    op.execute("INSERT INTO vault_access_log_head (id, last_sequence, last_hash) VALUES (1, 0, '')")
    op.execute("INSERT INTO vault_key_state (id, min_decryption_version) VALUES (1, 1)")


def downgrade() -> None:
    op.drop_table("vault_access_log_head")
    op.drop_index("ix_vault_access_log_merchant", "vault_access_log")
    op.drop_index("ix_vault_access_log_token", "vault_access_log")
    op.drop_table("vault_access_log")
    op.drop_table("vault_key_state")
    op.drop_table("vault_key_versions")
    op.drop_index("ix_vault_tokens_key_version", "vault_tokens")
    op.drop_index("ix_vault_tokens_merchant_fingerprint", "vault_tokens")
    op.drop_table("vault_tokens")
