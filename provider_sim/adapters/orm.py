"""SQLAlchemy tables of the provider service (its own metadata and migration history).

No card number is stored anywhere: transactions keep the last four digits and a keyed HMAC
fingerprint only.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

ID = sa.String(40)
REFERENCE = sa.String(128)
TIMESTAMP = sa.DateTime(timezone=True)

transactions = sa.Table(
    "provider_transactions",
    metadata,
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
    sa.Column("created_at", TIMESTAMP, nullable=False),
    sa.Column("updated_at", TIMESTAMP, nullable=False),
    sa.Column("captured_at", TIMESTAMP, nullable=True),
    sa.Column("chargeback_due_at", TIMESTAMP, nullable=True),
    sa.UniqueConstraint("provider", "reference", name="uq_provider_transactions_reference"),
    sa.Index("ix_provider_transactions_chargeback_due_at", "chargeback_due_at"),
)

captures = sa.Table(
    "provider_captures",
    metadata,
    sa.Column("provider", sa.String(16), primary_key=True),
    sa.Column("reference", REFERENCE, primary_key=True),
    sa.Column("transaction_id", ID, sa.ForeignKey("provider_transactions.id"), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("created_at", TIMESTAMP, nullable=False),
    sa.Column("settled_at", TIMESTAMP, nullable=True),
    # The transaction as first answered, so a replay returns exactly the first answer.
    sa.Column("response", sa.Text, nullable=False),
    sa.Index("ix_provider_captures_created_at", "provider", "created_at"),
)

refunds = sa.Table(
    "provider_refunds",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("provider", sa.String(16), nullable=False),
    sa.Column("reference", REFERENCE, nullable=False),
    sa.Column("transaction_id", ID, sa.ForeignKey("provider_transactions.id"), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("created_at", TIMESTAMP, nullable=False),
    sa.Column("settled_at", TIMESTAMP, nullable=True),
    sa.Column("response", sa.Text, nullable=False),
    sa.UniqueConstraint("provider", "reference", name="uq_provider_refunds_reference"),
    sa.Index("ix_provider_refunds_created_at", "provider", "created_at"),
    sa.Index("ix_provider_refunds_transaction_id", "transaction_id"),
)

disputes = sa.Table(
    "provider_disputes",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("provider", sa.String(16), nullable=False),
    sa.Column("transaction_id", ID, sa.ForeignKey("provider_transactions.id"), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", TIMESTAMP, nullable=False),
    sa.Column("resolved_at", TIMESTAMP, nullable=True),
)

webhook_events = sa.Table(
    "provider_webhook_events",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("provider", sa.String(16), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    # How many times the event is sent when delivered (2 when a duplicate is injected).
    sa.Column("copies", sa.Integer, nullable=False),
    sa.Column("copies_delivered", sa.Integer, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", TIMESTAMP, nullable=False),
    sa.Column("last_error", sa.String(256), nullable=False),
    sa.Column("created_at", TIMESTAMP, nullable=False),
    sa.Column("delivered_at", TIMESTAMP, nullable=True),
    sa.Index("ix_provider_webhook_events_due", "status", "next_attempt_at"),
)
