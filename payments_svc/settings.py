"""Settings of the payments service (environment prefix PAYMENTS_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from chassis import secrets
from chassis.settings import ServiceSettings, check_secret

SECONDS_PER_DAY = 86_400


class PaymentsSettings(ServiceSettings):
    """Payments service: gRPC port 50051 by default."""

    model_config = SettingsConfigDict(env_prefix="PAYMENTS_", extra="ignore", validate_default=True)
    service_name: ClassVar[str] = "payments"
    default_grpc_port: ClassVar[int] = 50051

    # Platform admin key; when unset, a development key is generated once into var/admin.key.
    admin_key: str | None = Field(None, validation_alias="CLEARHOUSE_ADMIN_KEY")
    # Key of the HMAC over idempotent requests (a request may carry card data, so a plain hash
    # would be brute-forceable); dev secret under var/secrets/ when unset.
    idempotency_hash_key: str | None = None

    # Addresses of the services payments calls (host:port).
    vault_address: str = "127.0.0.1:50052"
    ledger_address: str = "127.0.0.1:50053"
    provider_address: str = "127.0.0.1:50054"
    # Deadline of one call to the vault or the ledger.
    dependency_timeout_seconds: float = Field(5.0, gt=0.0, le=60.0)
    # Deadline of one call to a provider; past it the outcome is unknown and resolved later.
    provider_timeout_seconds: float = Field(5.0, gt=0.0, le=60.0)

    # Circuit breaker per provider (DESIGN.md §3).
    breaker_failure_threshold: int = Field(5, ge=1, le=1000)
    breaker_recovery_timeout_seconds: float = Field(30.0, gt=0.0, le=3600.0)
    breaker_half_open_max_calls: int = Field(3, ge=1, le=100)
    # Prefix of this service's keys in the shared cache (Redis), so tests can isolate themselves.
    cache_prefix: str = "clearhouse:payments:"

    # An authorization is voided by a worker after this window (default 7 days).
    authorization_window_seconds: int = Field(7 * SECONDS_PER_DAY, ge=1, le=31 * SECONDS_PER_DAY)
    # Idempotency keys are kept at least this long (default 24 h), then pruned.
    idempotency_retention_seconds: int = Field(SECONDS_PER_DAY, ge=1, le=30 * SECONDS_PER_DAY)

    # Background workers (outbox relay, unknown-outcome resolver, expiry, idempotency).
    workers_enabled: bool = True
    worker_interval_seconds: float = Field(1.0, gt=0.0, le=3600.0)

    @model_validator(mode="after")
    def _payments_secrets(self) -> PaymentsSettings:
        check_secret("CLEARHOUSE_ADMIN_KEY", self.admin_key, self.environment)
        check_secret("PAYMENTS_IDEMPOTENCY_HASH_KEY", self.idempotency_hash_key, self.environment)
        return self

    def resolved_admin_key(self) -> str:
        """The platform admin key in force (generated into var/admin.key on first local run)."""
        if self.admin_key:
            return self.admin_key
        return secrets.load_or_create(self.var_dir / "admin.key", prefix="sk_admin_")

    def resolved_idempotency_hash_key(self) -> str:
        """The idempotency HMAC key in force (a dev secret under var/secrets/ when unset)."""
        if self.idempotency_hash_key:
            return self.idempotency_hash_key
        return secrets.load_or_create(self.var_dir / "secrets" / "payments_idempotency.key")
