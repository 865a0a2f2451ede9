"""Settings of the gateway (environment prefix GATEWAY_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from chassis.settings import CommonSettings


class GatewaySettings(CommonSettings):
    """HTTP listener and the backends it transcodes to."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", validate_default=True)

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    # gRPC address of the payments service (every public RPC lives there).
    payments_address: str = "127.0.0.1:50051"
