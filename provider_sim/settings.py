"""Settings of the provider service (environment prefix PROVIDER_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from chassis.settings import ServiceSettings, check_secret

DEFAULT_WEBHOOK_URL = "http://127.0.0.1:8080/v1/provider_webhooks/{provider}"


class ProviderSettings(ServiceSettings):
    """The simulated acquirers: gRPC port 50054 by default."""

    model_config = SettingsConfigDict(env_prefix="PROVIDER_", extra="ignore", validate_default=True)
    service_name: ClassVar[str] = "provider"
    default_grpc_port: ClassVar[int] = 50054

    # Multiplies every simulated latency: 1 gives the profiles' realistic delays (demos), 0 none
    # (tests and benchmarks).
    latency_scale: float = Field(1.0, ge=0.0, le=10.0)
    # Where webhooks go; "{provider}" is replaced by provider_a / provider_b.
    webhook_url: str = DEFAULT_WEBHOOK_URL
    # Per-provider signing secrets; when unset, dev secrets under var/secrets/ are used (and
    # refused in production).
    webhook_secret_a: str | None = Field(None, validation_alias="PROVIDER_A_WEBHOOK_SECRET")
    webhook_secret_b: str | None = Field(None, validation_alias="PROVIDER_B_WEBHOOK_SECRET")
    # Key of the card fingerprint HMAC; dev secret under var/secrets/ when unset.
    fingerprint_key: str | None = None
    # First retry delay of a failed webhook; doubles per attempt (tests make it tiny).
    webhook_retry_base_seconds: float = Field(1.0, gt=0.0, le=3600.0)
    # Per-request timeout of one webhook POST.
    webhook_timeout_seconds: float = Field(5.0, gt=0.0, le=60.0)
    # How often the background worker looks for due webhooks and chargebacks when not woken.
    worker_poll_seconds: float = Field(0.5, gt=0.0, le=60.0)
    # Delay between the capture of the chargeback test card and its chargeback.opened webhook,
    # so the platform has recorded the capture before the dispute arrives.
    chargeback_delay_seconds: float = Field(1.0, ge=0.0, le=3600.0)

    @model_validator(mode="after")
    def _provider_secrets(self) -> ProviderSettings:
        check_secret("PROVIDER_A_WEBHOOK_SECRET", self.webhook_secret_a, self.environment)
        check_secret("PROVIDER_B_WEBHOOK_SECRET", self.webhook_secret_b, self.environment)
        check_secret("PROVIDER_FINGERPRINT_KEY", self.fingerprint_key, self.environment)
        if "://" not in self.webhook_url:
            raise ValueError("PROVIDER_WEBHOOK_URL must be an absolute http(s) URL")
        return self
