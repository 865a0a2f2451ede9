"""SQLAlchemy tables of the vault service (its own metadata and migration history).

No key material lives here: key-encryption keys come from configuration or a key file; this
database only knows version numbers and a short key check value per version.
Times are integer microseconds since the epoch, identical on SQLite and PostgreSQL, so the
access log's hashes recompute exactly.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

TOKEN_LENGTH_MAX = 64
MERCHANT_ID_LENGTH_MAX = 64
PRINCIPAL_LENGTH_MAX = 200
REFERENCE_LENGTH_MAX = 200

tokens = sa.Table(
    "vault_tokens",
    metadata,
    sa.Column("token", sa.String(TOKEN_LENGTH_MAX), primary_key=True),
    sa.Column("merchant_id", sa.String(MERCHANT_ID_LENGTH_MAX), nullable=False),
    sa.Column("brand", sa.String(16), nullable=False),
    sa.Column("first6", sa.String(6), nullable=False),
    sa.Column("last4", sa.String(4), nullable=False),
    sa.Column("exp_month", sa.Integer, nullable=False),
    sa.Column("exp_year", sa.Integer, nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("cardholder_name", sa.String(200), nullable=True),
    sa.Column("country", sa.String(2), nullable=False),
    sa.Column("key_version", sa.Integer, nullable=False),
    # NULL after DeleteToken: the data key is destroyed (crypto-shredding), the ciphertext too.
    sa.Column("wrapped_key", sa.LargeBinary, nullable=True),
    sa.Column("ciphertext", sa.LargeBinary, nullable=True),
    sa.Column("created_at_us", sa.BigInteger, nullable=False),
    sa.Column("deleted_at_us", sa.BigInteger, nullable=True),
    sa.Index("ix_vault_tokens_merchant_fingerprint", "merchant_id", "fingerprint"),
    sa.Index("ix_vault_tokens_key_version", "key_version"),
)

key_versions = sa.Table(
    "vault_key_versions",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("key_check", sa.String(32), nullable=False),
    sa.Column("created_at_us", sa.BigInteger, nullable=False),
)

# One row (id = 1): the lowest key version still allowed to decrypt.
key_state = sa.Table(
    "vault_key_state",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("min_decryption_version", sa.Integer, nullable=False),
)

access_log = sa.Table(
    "vault_access_log",
    metadata,
    sa.Column("sequence", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("created_at_us", sa.BigInteger, nullable=False),
    sa.Column("actor_service", sa.String(64), nullable=False),
    sa.Column("merchant_id", sa.String(MERCHANT_ID_LENGTH_MAX), nullable=False),
    sa.Column("principal", sa.String(PRINCIPAL_LENGTH_MAX), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("token", sa.String(TOKEN_LENGTH_MAX), nullable=False),
    sa.Column("purpose", sa.String(32), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("trace_id", sa.String(32), nullable=False),
    sa.Column("reference", sa.String(REFERENCE_LENGTH_MAX), nullable=False),
    sa.Column("previous_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Index("ix_vault_access_log_token", "token"),
    sa.Index("ix_vault_access_log_merchant", "merchant_id"),
)

# One row (id = 1): the chain's last sequence and hash. Appenders lock it, which orders every
# append (and so every vault write) across replicas; it also exposes truncation of the log.
access_log_head = sa.Table(
    "vault_access_log_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("last_sequence", sa.BigInteger, nullable=False),
    sa.Column("last_hash", sa.String(64), nullable=False),
)
