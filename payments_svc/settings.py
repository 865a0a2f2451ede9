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

    # Part 2. Dispute fee charged when a dispute opens, minor units (DESIGN.md §3).
    dispute_fee: int = Field(1_500, ge=0, le=1_000_000)
    # Providers' webhook signing secrets (the simulator reads the same variables or dev files).
    provider_a_webhook_secret: str | None = Field(None, validation_alias="PROVIDER_A_WEBHOOK_SECRET")
    provider_b_webhook_secret: str | None = Field(None, validation_alias="PROVIDER_B_WEBHOOK_SECRET")
    # Multiplies the webhook retry schedule (about 3 days at 1.0; tests use a tiny value).
    webhook_retry_scale: float = Field(1.0, ge=0.0, le=10.0)
    # Deliver to loopback/private addresses and plain HTTP (development and tests only: SSRF).
    webhook_allow_private_targets: bool = False
    # Per-POST timeout of a webhook delivery.
    webhook_timeout_seconds: float = Field(10.0, gt=0.0, le=60.0)
    # The scheduled settlement settles payments captured up to this many days ago.
    settlement_delay_days: int = Field(1, ge=0, le=30)

    @model_validator(mode="after")
    def _payments_secrets(self) -> PaymentsSettings:
        check_secret("CLEARHOUSE_ADMIN_KEY", self.admin_key, self.environment)
        check_secret("PAYMENTS_IDEMPOTENCY_HASH_KEY", self.idempotency_hash_key, self.environment)
        check_secret("PROVIDER_A_WEBHOOK_SECRET", self.provider_a_webhook_secret, self.environment)
        check_secret("PROVIDER_B_WEBHOOK_SECRET", self.provider_b_webhook_secret, self.environment)
        if self.is_production and self.webhook_allow_private_targets:
            raise ValueError("PAYMENTS_WEBHOOK_ALLOW_PRIVATE_TARGETS is refused in production (SSRF)")
        return self

    def resolved_provider_webhook_secrets(self) -> dict[str, str]:
        """Signing secret per provider (dev files under var/secrets/ when unset)."""
        found = {"provider_a": self.provider_a_webhook_secret, "provider_b": self.provider_b_webhook_secret}
        return {
            provider: value or secrets.load_or_create(self.var_dir / "secrets" / f"{provider}_webhook.key")
            for provider, value in found.items()
        }

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
