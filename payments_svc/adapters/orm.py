"""SQLAlchemy tables of the payments service (its own metadata and migration history).

Nested values that are only ever read whole (an intent's payment method, last error, metadata
and in-flight operation; an event's payload) are JSON columns; everything a query filters on
has its own column and index.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

ID = 64
TIMESTAMP = sa.DateTime(timezone=True)

merchants = sa.Table(
    "merchants",
    metadata,
    sa.Column("id", sa.String(ID), primary_key=True),
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

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(ID), primary_key=True),
    sa.Column("merchant_id", sa.String(ID), sa.ForeignKey("merchants.id"), nullable=False, index=True),
    # SHA-256 (hex) of the 256-bit random secret; the secret itself is never stored.
    sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("secret_last4", sa.String(4), nullable=False),
    sa.Column("principal", sa.String(100), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", TIMESTAMP, nullable=False),
    sa.Column("revoked_at", TIMESTAMP, nullable=True),
)

# Currencies in which a merchant's ledger accounts exist (created on demand).
merchant_currencies = sa.Table(
    "merchant_currencies",
    metadata,
    sa.Column("merchant_id", sa.String(ID), sa.ForeignKey("merchants.id"), primary_key=True),
    sa.Column("currency", sa.String(3), primary_key=True),
)

payment_intents = sa.Table(
    "payment_intents",
    metadata,
    sa.Column("id", sa.String(ID), primary_key=True),
    sa.Column("merchant_id", sa.String(ID), sa.ForeignKey("merchants.id"), nullable=False),
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
    # The in-flight operation (recovery point); its kind and lease are columns for the workers.
    sa.Column("operation", sa.JSON, nullable=True),
    sa.Column("operation_kind", sa.String(16), nullable=True),
    sa.Column("operation_lease_until", TIMESTAMP, nullable=True),
    # Claim id of the operation: updates compare-and-set on it, so one owner finishes it.
    sa.Column("operation_claim_id", sa.String(64), nullable=True),
    sa.Index("ix_payment_intents_merchant_id_id", "merchant_id", "id"),
    sa.Index("ix_payment_intents_operation_kind", "operation_kind"),
    sa.Index("ix_payment_intents_status_expiry", "status", "authorization_expires_at"),
)

# Outbox: every state change writes its event here in the same transaction.
events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.String(ID), primary_key=True),
    sa.Column("merchant_id", sa.String(ID), nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("object_id", sa.String(ID), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("created_at", TIMESTAMP, nullable=False),
    sa.Column("trace_id", sa.String(32), nullable=False),
    # Set by the outbox relay once published; NULL rows are the relay's queue.
    sa.Column("relayed_at", TIMESTAMP, nullable=True),
    sa.Index("ix_events_merchant_id_id", "merchant_id", "id"),
    sa.Index("ix_events_object_id", "object_id"),
    sa.Index("ix_events_relayed_at", "relayed_at"),
)

# Idempotency keys (Brandur Leach's design): one row per (scope, key), written in the same
# transactions as the effects it records.
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    # The merchant id, or "platform" for platform-admin calls.
    sa.Column("scope", sa.String(ID), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("method", sa.String(128), nullable=False),
    # HMAC-SHA256 (hex) of the request under a server key (a request may carry card data).
    sa.Column("request_hash", sa.String(64), nullable=False),
    # "started" or "completed".
    sa.Column("state", sa.String(16), nullable=False),
    # While set and in the future, a request owns the key (others get IDEMPOTENCY_KEY_IN_USE).
    sa.Column("locked_until", TIMESTAMP, nullable=True),
    # "started", or "intent:<pi_…>" once an intent carries the operation (the recovery point).
    sa.Column("recovery_point", sa.String(128), nullable=False),
    # "ok" (response = serialized response message) or "error" (response = JSON of the error).
    sa.Column("response_kind", sa.String(8), nullable=True),
    sa.Column("response", sa.LargeBinary, nullable=True),
    sa.Column("created_at", TIMESTAMP, nullable=False),
    sa.Column("completed_at", TIMESTAMP, nullable=True),
    sa.Index("ix_idempotency_keys_created_at", "created_at"),
    sa.Index("ix_idempotency_keys_state_locked_until", "state", "locked_until"),
)

# Part 2: refunds, disputes, provider webhooks, webhooks out, settlement, payouts, reconciliation.

refunds = sa.Table(
    "refunds",
    metadata,
    sa.Column("id", sa.String(ID), primary_key=True),
    sa.Column("merchant_id", sa.String(ID), nullable=False),
    sa.Column("payment_intent_id", sa.String(ID), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    # PENDING_APPROVAL, APPROVING (claimed by a checker, provider call in flight), SUCCEEDED,
    # FAILED, REJECTED.
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
    sa.Index("ix_refunds_merchant_id_id", "merchant_id", "id"),
    sa.Index("ix_refunds_payment_intent_id", "payment_intent_id"),
    sa.Index("ix_refunds_status", "status"),
)

disputes = sa.Table(
    "disputes",
    metadata,
    sa.Column("id", sa.String(ID), primary_key=True),
    sa.Column("merchant_id", sa.String(ID), nullable=False),
    sa.Column("payment_intent_id", sa.String(ID), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("fee", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("evidence", sa.JSON, nullable=True),
    # "<provider>:<provider dispute id>" when opened by a provider webhook; unique, so a
    # chargeback opens at most one dispute.
    sa.Column("provider_dispute_key", sa.String(200), nullable=True, unique=True),
    sa.Column("provider_dispute_id", sa.String(128), nullable=False),
    # The intent status before the dispute (CAPTURED or SETTLED), restored when won.
    sa.Column("intent_status_before", sa.String(16), nullable=False),
    sa.Column("created_at", TIMESTAMP, nullable=False),
    sa.Column("updated_at", TIMESTAMP, nullable=False),
    sa.Column("resolved_at", TIMESTAMP, nullable=True),
    sa.Index("ix_disputes_merchant_id_id", "merchant_id", "id"),
    sa.Index("ix_disputes_payment_intent_id", "payment_intent_id"),
)

# Provider webhook event ids already applied (dedupe, kept with the effect's transaction).
provider_webhook_events = sa.Table(
    "provider_webhook_events",
    metadata,
    sa.Column("provider", sa.String(32), primary_key=True),
    sa.Column("event_id", sa.String(128), primary_key=True),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("result", sa.String(200), nullable=False),
    sa.Column("received_at", TIMESTAMP, nullable=False),
)

# Ledger postings outbox: written with the state change, posted right after and by a job until
# the ledger confirms (transfer ids are deterministic, so a repeat is EXISTS).
ledger_postings = sa.Table(
    "ledger_postings",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("merchant_id", sa.String(ID), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("transfers", sa.JSON, nullable=False),
    sa.Column("created_at", TIMESTAMP, nullable=False),
    sa.Column("posted_at", TIMESTAMP, nullable=True),
    sa.Index("ix_ledger_postings_posted_at", "posted_at"),
)

webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("id", sa.String(ID), primary_key=True),
    sa.Column("merchant_id", sa.String(ID), nullable=False),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("enabled_events", sa.JSON, nullable=False),
    # The signing secret must be usable to sign, so it is stored (not hashed); shown once.
    sa.Column("secret", sa.String(128), nullable=False),
    sa.Column("description", sa.String(500), nullable=False),
    sa.Column("created_at", TIMESTAMP, nullable=False),
    sa.Column("deleted_at", TIMESTAMP, nullable=True),
    sa.Index("ix_webhook_endpoints_merchant_id_id", "merchant_id", "id"),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.String(ID), primary_key=True),
    sa.Column("merchant_id", sa.String(ID), nullable=False),
    sa.Column("endpoint_id", sa.String(ID), nullable=False),
    sa.Column("event_id", sa.String(ID), nullable=False),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.JSON, nullable=False),
    sa.Column("attempt_count", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", TIMESTAMP, nullable=True),
    # A dispatcher's claim: other replicas skip the row until the lease lapses.
    sa.Column("lease_until", TIMESTAMP, nullable=True),
    sa.Column("claim_id", sa.String(32), nullable=True),
    sa.Column("created_at", TIMESTAMP, nullable=False),
    sa.Column("delivered_at", TIMESTAMP, nullable=True),
    sa.Index("ix_webhook_deliveries_endpoint_id_id", "endpoint_id", "id"),
    sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
)

settlements = sa.Table(
    "settlements",
    metadata,
    sa.Column("id", sa.String(ID), primary_key=True),
    sa.Column("merchant_id", sa.String(ID), nullable=False),
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("as_of", sa.String(10), nullable=False),
    sa.Column("gross_amount", sa.BigInteger, nullable=False),
    sa.Column("fee_amount", sa.BigInteger, nullable=False),
    sa.Column("net_amount", sa.BigInteger, nullable=False),
    sa.Column("payment_count", sa.Integer, nullable=False),
    sa.Column("created_at", TIMESTAMP, nullable=False),
    sa.Index("ix_settlements_merchant_id_id", "merchant_id", "id"),
)

# One row per settled payment: the primary key makes settling a payment twice impossible.
settlement_lines = sa.Table(
    "settlement_lines",
    metadata,
    sa.Column("payment_intent_id", sa.String(ID), primary_key=True),
    sa.Column("settlement_id", sa.String(ID), nullable=False, index=True),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("fee", sa.BigInteger, nullable=False),
    sa.Column("net", sa.BigInteger, nullable=False),
)

payouts = sa.Table(
    "payouts",
    metadata,
    sa.Column("id", sa.String(ID), primary_key=True),
    sa.Column("merchant_id", sa.String(ID), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("bank_account", sa.String(34), nullable=False),
    sa.Column("failure_code", sa.String(64), nullable=False),
    sa.Column("failure_message", sa.String(500), nullable=False),
    sa.Column("description", sa.String(500), nullable=False),
    sa.Column("created_at", TIMESTAMP, nullable=False),
    sa.Column("updated_at", TIMESTAMP, nullable=False),
    sa.Index("ix_payouts_merchant_id_id", "merchant_id", "id"),
    sa.Index("ix_payouts_status", "status"),
)

reconciliations = sa.Table(
    "reconciliations",
    metadata,
    sa.Column("id", sa.String(ID), primary_key=True),
    sa.Column("merchant_id", sa.String(ID), nullable=False),
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("date", sa.String(10), nullable=False),
    sa.Column("item_count", sa.Integer, nullable=False),
    sa.Column("matched_count", sa.Integer, nullable=False),
    sa.Column("mismatch_count", sa.Integer, nullable=False),
    sa.Column("report_total", sa.BigInteger, nullable=False),
    sa.Column("ledger_total", sa.BigInteger, nullable=False),
    sa.Column("items", sa.JSON, nullable=False),
    sa.Column("created_at", TIMESTAMP, nullable=False),
    sa.Index("ix_reconciliations_merchant_id_id", "merchant_id", "id"),
)
