"""Settings of the gateway (environment prefix GATEWAY_)."""

from __future__ import annotations

import pathlib

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from chassis.settings import CommonSettings

REPOSITORY_ROOT = pathlib.Path(__file__).resolve().parent.parent
# Largest request body accepted, bytes (a payment request is well under 10 KiB).
BODY_BYTES_DEFAULT = 1024 * 1024


class GatewaySettings(CommonSettings):
    """HTTP listener, the backend it transcodes to, and the edge limits.

    The default per-route deadline is the shared `CLEARHOUSE_DEFAULT_DEADLINE_SECONDS` (10 s).
    """

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", validate_default=True)

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    # gRPC address of the payments service (every public RPC lives there).
    payments_address: str = "127.0.0.1:50051"
    # Python packages whose `*_pb2` modules declare the services to expose.
    packages: list[str] = Field(default_factory=lambda: ["clearhouse.payments.v1"])
    # Folders holding the .proto sources, read once for the OpenAPI descriptions.
    proto_source_dirs: list[pathlib.Path] = Field(default_factory=lambda: [REPOSITORY_ROOT / "protos"])
    body_bytes_max: int = Field(BODY_BYTES_DEFAULT, ge=1024, le=64 * 1024 * 1024)
    # A caller's grpc-timeout / X-Timeout is honoured up to this many seconds.
    deadline_seconds_max: float = Field(60.0, gt=0, le=600)
    # Per-RPC default deadlines, keyed by full method name ("clearhouse.payments.v1.Risk.AssessRisk").
    deadline_overrides_seconds: dict[str, float] = Field(default_factory=dict)
    # Per-API-key rate in `limits` notation ("100/second", "6000/minute"); generous by default.
    rate_limit: str = "100/second"
    rate_limit_enabled: bool = True
    # Origins allowed by CORS; empty turns CORS off.
    cors_allow_origins: list[str] = Field(default_factory=list)
    # Proxies in front of the gateway whose X-Forwarded-For is trusted (0: use the socket peer).
    trusted_proxy_count: int = Field(0, ge=0, le=5)

    @field_validator("rate_limit")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        from limits import parse  # noqa: PLC0415 - only needed to validate

        try:
            parse(value)
        except ValueError as error:
            raise ValueError(f"invalid rate limit {value!r}: {error}") from None
        return value

    @field_validator("deadline_overrides_seconds")
    @classmethod
    def _overrides(cls, value: dict[str, float]) -> dict[str, float]:
        for name, seconds in value.items():
            if not 0 < seconds <= 600:
                raise ValueError(f"deadline for {name} must be in (0, 600] seconds")
        return value
