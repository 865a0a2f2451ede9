"""Settings of the vault service (environment prefix VAULT_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from chassis.settings import ServiceSettings


class VaultSettings(ServiceSettings):
    """The card vault: gRPC port 50052 by default."""

    model_config = SettingsConfigDict(env_prefix="VAULT_", extra="ignore", validate_default=True)
    service_name: ClassVar[str] = "vault"
    default_grpc_port: ClassVar[int] = 50052
