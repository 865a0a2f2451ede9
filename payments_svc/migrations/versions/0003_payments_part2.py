"""Refunds, disputes, provider webhook ids, ledger postings, webhook endpoints and deliveries,
settlements, payouts, reconciliations (payments part 2).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "refunds",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("merchant_id", sa.String(64), nullable=False),
        sa.Column("payment_intent_id", sa.String(64), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("requested_by", sa.String(100), nullable=False),
        sa.Column("reviewed_by", sa.String(100), nullable=False),
        sa.Column("rejection_reason", sa.String(500), nullable=False),
        sa.Column("failure_code", sa.String(64), nullable=False),
        sa.Column("failure_message", sa.String(500), nullable=False),
        sa.Column("provider_reference", sa.String(128), nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("lease_until", TIMESTAMP, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
    )
    op.create_index("ix_refunds_merchant_id_id", "refunds", ["merchant_id", "id"])
    op.create_index("ix_refunds_payment_intent_id", "refunds", ["payment_intent_id"])
    op.create_index("ix_refunds_status", "refunds", ["status"])
    op.create_table(
        "disputes",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("merchant_id", sa.String(64), nullable=False),
        sa.Column("payment_intent_id", sa.String(64), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("fee", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("evidence", sa.JSON, nullable=True),
        sa.Column("provider_dispute_key", sa.String(200), nullable=True, unique=True),
        sa.Column("provider_dispute_id", sa.String(128), nullable=False),
        sa.Column("intent_status_before", sa.String(16), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("resolved_at", TIMESTAMP, nullable=True),
    )
    op.create_index("ix_disputes_merchant_id_id", "disputes", ["merchant_id", "id"])
    op.create_index("ix_disputes_payment_intent_id", "disputes", ["payment_intent_id"])
    op.create_table(
        "provider_webhook_events",
        sa.Column("provider", sa.String(32), primary_key=True),
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("result", sa.String(200), nullable=False),
        sa.Column("received_at", TIMESTAMP, nullable=False),
    )
    op.create_table(
        "ledger_postings",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("merchant_id", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("transfers", sa.JSON, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("posted_at", TIMESTAMP, nullable=True),
    )
    op.create_index("ix_ledger_postings_posted_at", "ledger_postings", ["posted_at"])
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("merchant_id", sa.String(64), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("enabled_events", sa.JSON, nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("deleted_at", TIMESTAMP, nullable=True),
    )
    op.create_index("ix_webhook_endpoints_merchant_id_id", "webhook_endpoints", ["merchant_id", "id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("merchant_id", sa.String(64), nullable=False),
        sa.Column("endpoint_id", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.JSON, nullable=False),
        sa.Column("attempt_count", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", TIMESTAMP, nullable=True),
        sa.Column("lease_until", TIMESTAMP, nullable=True),
        sa.Column("claim_id", sa.String(32), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("delivered_at", TIMESTAMP, nullable=True),
    )
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"])
    op.create_index("ix_webhook_deliveries_endpoint_id_id", "webhook_deliveries", ["endpoint_id", "id"])
    op.create_table(
        "settlements",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("merchant_id", sa.String(64), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("as_of", sa.String(10), nullable=False),
        sa.Column("gross_amount", sa.BigInteger, nullable=False),
        sa.Column("fee_amount", sa.BigInteger, nullable=False),
        sa.Column("net_amount", sa.BigInteger, nullable=False),
        sa.Column("payment_count", sa.Integer, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
    )
    op.create_index("ix_settlements_merchant_id_id", "settlements", ["merchant_id", "id"])
    op.create_table(
        "settlement_lines",
        sa.Column("payment_intent_id", sa.String(64), primary_key=True),
        sa.Column("settlement_id", sa.String(64), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("fee", sa.BigInteger, nullable=False),
        sa.Column("net", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_settlement_lines_settlement_id", "settlement_lines", ["settlement_id"])
    op.create_table(
        "payouts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("merchant_id", sa.String(64), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("bank_account", sa.String(34), nullable=False),
        sa.Column("failure_code", sa.String(64), nullable=False),
        sa.Column("failure_message", sa.String(500), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
    )
    op.create_index("ix_payouts_merchant_id_id", "payouts", ["merchant_id", "id"])
    op.create_index("ix_payouts_status", "payouts", ["status"])
    op.create_table(
        "reconciliations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("merchant_id", sa.String(64), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("date", sa.String(10), nullable=False),
        sa.Column("item_count", sa.Integer, nullable=False),
        sa.Column("matched_count", sa.Integer, nullable=False),
        sa.Column("mismatch_count", sa.Integer, nullable=False),
        sa.Column("report_total", sa.BigInteger, nullable=False),
        sa.Column("ledger_total", sa.BigInteger, nullable=False),
        sa.Column("items", sa.JSON, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
    )
    op.create_index("ix_reconciliations_merchant_id_id", "reconciliations", ["merchant_id", "id"])


def downgrade() -> None:
    op.drop_table("reconciliations")
    op.drop_table("payouts")
    op.drop_table("settlement_lines")
    op.drop_table("settlements")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
    op.drop_table("ledger_postings")
    op.drop_table("provider_webhook_events")
    op.drop_table("disputes")
    op.drop_table("refunds")
