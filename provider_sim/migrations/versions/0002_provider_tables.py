"""Provider tables: transactions, captures, refunds, disputes, webhook events.

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

ID = sa.String(40)
REFERENCE = sa.String(128)


def ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "provider_transactions",
        sa.Column("id", ID, primary_key=True),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("reference", REFERENCE, nullable=False),
        sa.Column("merchant_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_captured", sa.BigInteger, nullable=False),
        sa.Column("amount_refunded", sa.BigInteger, nullable=False),
        sa.Column("decline_code", sa.String(32), nullable=False),
        sa.Column("message", sa.String(256), nullable=False),
        sa.Column("last4", sa.String(4), nullable=False),
        sa.Column("card_fingerprint", sa.String(64), nullable=False),
        sa.Column("authorization_code", sa.String(16), nullable=False),
        sa.Column("behaviour", sa.String(32), nullable=False),
        ts("created_at"),
        ts("updated_at"),
        ts("captured_at", nullable=True),
        ts("chargeback_due_at", nullable=True),
        sa.UniqueConstraint("provider", "reference", name="uq_provider_transactions_reference"),
    )
    op.create_index(
        "ix_provider_transactions_chargeback_due_at", "provider_transactions", ["chargeback_due_at"]
    )
    op.create_table(
        "provider_captures",
        sa.Column("provider", sa.String(16), primary_key=True),
        sa.Column("reference", REFERENCE, primary_key=True),
        sa.Column("transaction_id", ID, sa.ForeignKey("provider_transactions.id"), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        ts("created_at"),
        ts("settled_at", nullable=True),
        sa.Column("response", sa.Text, nullable=False),
    )
    op.create_index("ix_provider_captures_created_at", "provider_captures", ["provider", "created_at"])
    op.create_table(
        "provider_refunds",
        sa.Column("id", ID, primary_key=True),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("reference", REFERENCE, nullable=False),
        sa.Column("transaction_id", ID, sa.ForeignKey("provider_transactions.id"), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        ts("created_at"),
        ts("settled_at", nullable=True),
        sa.Column("response", sa.Text, nullable=False),
        sa.UniqueConstraint("provider", "reference", name="uq_provider_refunds_reference"),
    )
    op.create_index("ix_provider_refunds_created_at", "provider_refunds", ["provider", "created_at"])
    op.create_index("ix_provider_refunds_transaction_id", "provider_refunds", ["transaction_id"])
    op.create_table(
        "provider_disputes",
        sa.Column("id", ID, primary_key=True),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("transaction_id", ID, sa.ForeignKey("provider_transactions.id"), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        ts("created_at"),
        ts("resolved_at", nullable=True),
    )
    op.create_table(
        "provider_webhook_events",
        sa.Column("id", ID, primary_key=True),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("copies", sa.Integer, nullable=False),
        sa.Column("copies_delivered", sa.Integer, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        ts("next_attempt_at"),
        sa.Column("last_error", sa.String(256), nullable=False),
        ts("created_at"),
        ts("delivered_at", nullable=True),
    )
    op.create_index(
        "ix_provider_webhook_events_due", "provider_webhook_events", ["status", "next_attempt_at"]
    )


def downgrade() -> None:
    op.drop_table("provider_webhook_events")
    op.drop_table("provider_disputes")
    op.drop_index("ix_provider_refunds_transaction_id", table_name="provider_refunds")
    op.drop_index("ix_provider_refunds_created_at", table_name="provider_refunds")
    op.drop_table("provider_refunds")
    op.drop_index("ix_provider_captures_created_at", table_name="provider_captures")
    op.drop_table("provider_captures")
    op.drop_index("ix_provider_transactions_chargeback_due_at", table_name="provider_transactions")
    op.drop_table("provider_transactions")
