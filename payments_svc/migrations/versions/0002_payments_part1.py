"""Merchants, API keys, payment intents, outbox events, idempotency keys.

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

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "merchants",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("default_currency", sa.String(3), nullable=False),
        sa.Column("fee_basis_points", sa.Integer, nullable=False),
        sa.Column("fee_fixed", sa.BigInteger, nullable=False),
        sa.Column("risk_amount_threshold", sa.BigInteger, nullable=False),
        sa.Column("risk_review_score", sa.Integer, nullable=False),
        sa.Column("risk_block_score", sa.Integer, nullable=False),
        sa.Column("payout_bank_account", sa.String(34), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("merchant_id", sa.String(64), sa.ForeignKey("merchants.id"), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("secret_last4", sa.String(4), nullable=False),
        sa.Column("principal", sa.String(100), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("revoked_at", TIMESTAMP, nullable=True),
    )
    op.create_index("ix_api_keys_merchant_id", "api_keys", ["merchant_id"])
    op.create_table(
        "merchant_currencies",
        sa.Column("merchant_id", sa.String(64), sa.ForeignKey("merchants.id"), primary_key=True),
        sa.Column("currency", sa.String(3), primary_key=True),
    )
    op.create_table(
        "payment_intents",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("merchant_id", sa.String(64), sa.ForeignKey("merchants.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("capture_method", sa.String(16), nullable=False),
        sa.Column("amount_capturable", sa.BigInteger, nullable=False),
        sa.Column("amount_captured", sa.BigInteger, nullable=False),
        sa.Column("amount_refunded", sa.BigInteger, nullable=False),
        sa.Column("amount_disputed", sa.BigInteger, nullable=False),
        sa.Column("fee_amount", sa.BigInteger, nullable=False),
        sa.Column("last_error", sa.JSON, nullable=True),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("provider_reference", sa.String(128), nullable=False),
        sa.Column("preferred_provider", sa.String(32), nullable=False),
        sa.Column("payment_method", sa.JSON, nullable=True),
        sa.Column("description", sa.String(1000), nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("cancellation_reason", sa.String(200), nullable=False),
        sa.Column("risk_score", sa.Integer, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("authorization_expires_at", TIMESTAMP, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("operation", sa.JSON, nullable=True),
        sa.Column("operation_kind", sa.String(16), nullable=True),
        sa.Column("operation_lease_until", TIMESTAMP, nullable=True),
        sa.Column("operation_claim_id", sa.String(64), nullable=True),
    )
    op.create_index("ix_payment_intents_merchant_id_id", "payment_intents", ["merchant_id", "id"])
    op.create_index("ix_payment_intents_operation_kind", "payment_intents", ["operation_kind"])
    op.create_index(
        "ix_payment_intents_status_expiry", "payment_intents", ["status", "authorization_expires_at"]
    )
    op.create_table(
        "events",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("merchant_id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("object_id", sa.String(64), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("relayed_at", TIMESTAMP, nullable=True),
    )
    op.create_index("ix_events_merchant_id_id", "events", ["merchant_id", "id"])
    op.create_index("ix_events_object_id", "events", ["object_id"])
    op.create_index("ix_events_relayed_at", "events", ["relayed_at"])
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("method", sa.String(128), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("locked_until", TIMESTAMP, nullable=True),
        sa.Column("recovery_point", sa.String(128), nullable=False),
        sa.Column("response_kind", sa.String(8), nullable=True),
        sa.Column("response", sa.LargeBinary, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("completed_at", TIMESTAMP, nullable=True),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])
    op.create_index("ix_idempotency_keys_state_locked_until", "idempotency_keys", ["state", "locked_until"])


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_table("events")
    op.drop_table("payment_intents")
    op.drop_table("merchant_currencies")
    op.drop_table("api_keys")
    op.drop_table("merchants")
