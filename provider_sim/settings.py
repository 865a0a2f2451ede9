"""Settings of the provider service (environment prefix PROVIDER_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from chassis.settings import ServiceSettings


class ProviderSettings(ServiceSettings):
    """The simulated acquirers: gRPC port 50054 by default."""

    model_config = SettingsConfigDict(env_prefix="PROVIDER_", extra="ignore", validate_default=True)
    service_name: ClassVar[str] = "provider"
    default_grpc_port: ClassVar[int] = 50054
