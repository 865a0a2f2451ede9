"""Settings of the payments service (environment prefix PAYMENTS_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from chassis.settings import ServiceSettings


class PaymentsSettings(ServiceSettings):
    """Payments service: gRPC port 50051 by default."""

    model_config = SettingsConfigDict(env_prefix="PAYMENTS_", extra="ignore", validate_default=True)
    service_name: ClassVar[str] = "payments"
    default_grpc_port: ClassVar[int] = 50051
