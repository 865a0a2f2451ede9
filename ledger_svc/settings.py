"""Settings of the ledger service (environment prefix LEDGER_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from chassis.settings import ServiceSettings


class LedgerSettings(ServiceSettings):
    """The double-entry ledger: gRPC port 50053 by default."""

    model_config = SettingsConfigDict(env_prefix="LEDGER_", extra="ignore", validate_default=True)
    service_name: ClassVar[str] = "ledger"
    default_grpc_port: ClassVar[int] = 50053
