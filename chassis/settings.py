"""Typed settings, validated at start-up (pydantic-settings).

Shared fields have fixed environment names (`CLEARHOUSE_ENV`, `REDIS_URL`, …); each process's own
fields carry its prefix (`LEDGER_DATABASE_URL`, `LEDGER_GRPC_PORT`, …). Production mode refuses
missing or placeholder secrets at once, so a misconfigured process never starts half-secure.
"""

from __future__ import annotations

import enum
import pathlib
from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Values people leave in config files by mistake; never acceptable as a secret in production.
PLACEHOLDER_SECRETS = frozenset(
    {
        "",
        "changeme",
        "change-me",
        "change_me",
        "secret",
        "password",
        "placeholder",
        "dev",
        "development",
        "test",
        "example",
        "xxx",
        "todo",
        "default",
        "admin",
        "none",
        "null",
    }
)
SECRET_LENGTH_MIN = 32


class Environment(enum.StrEnum):
    """Where the process runs; production hardens every default."""

    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the variable."""


def check_secret(name: str, value: str | None, environment: Environment) -> None:
    """Refuse a missing, placeholder or short secret in production (no-op elsewhere)."""
    if environment is not Environment.PRODUCTION:
        return
    if value is None or value.strip().lower() in PLACEHOLDER_SECRETS:
        raise SettingsError(f"{name} must be set to a real secret in production")
    if len(value) < SECRET_LENGTH_MIN:
        raise SettingsError(f"{name} must be at least {SECRET_LENGTH_MIN} characters in production")


class CommonSettings(BaseSettings):
    """Settings every process shares."""

    model_config = SettingsConfigDict(extra="ignore", validate_default=True)

    environment: Environment = Field(Environment.DEVELOPMENT, validation_alias="CLEARHOUSE_ENV")
    var_dir: pathlib.Path = Field(pathlib.Path("var"), validation_alias="CLEARHOUSE_VAR_DIR")
    # Plaintext gRPC between services: local debugging only, refused in production.
    plaintext: bool = Field(False, validation_alias="CLEARHOUSE_PLAINTEXT")
    log_level: str = Field("INFO", validation_alias="CLEARHOUSE_LOG_LEVEL")
    redis_url: str | None = Field(None, validation_alias="REDIS_URL")
    # Port for the Prometheus /metrics endpoint of a gRPC process; 0 disables it.
    metrics_port: int = Field(0, validation_alias="CLEARHOUSE_METRICS_PORT", ge=0, le=65535)
    # Interface of that endpoint: loopback locally; 0.0.0.0 in a container so Prometheus can scrape.
    metrics_host: str = Field("127.0.0.1", validation_alias="CLEARHOUSE_METRICS_HOST")
    # Plaintext gRPC port serving only the standard health service, 0 disables it. Kubernetes'
    # native grpc probes cannot present a client certificate, so they cannot reach the mTLS port.
    health_port: int = Field(0, validation_alias="CLEARHOUSE_HEALTH_PORT", ge=0, le=65535)
    # Server-side deadline applied when a caller sets none, seconds.
    default_deadline_seconds: float = Field(
        10.0, validation_alias="CLEARHOUSE_DEFAULT_DEADLINE_SECONDS", gt=0, le=300
    )

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return level

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("REDIS_URL must start with redis://, rediss:// or unix://")
        return value or None

    @model_validator(mode="after")
    def _production_hardening(self) -> CommonSettings:
        if self.environment is Environment.PRODUCTION and self.plaintext:
            raise ValueError("CLEARHOUSE_PLAINTEXT is refused in production: services use mTLS")
        return self

    @property
    def is_production(self) -> bool:
        """True in production mode."""
        return self.environment is Environment.PRODUCTION

    @property
    def certs_dir(self) -> pathlib.Path:
        """Where the local CA and service certificates live."""
        return self.var_dir / "certs"


class ServiceSettings(CommonSettings):
    """Settings of one gRPC service; subclasses set `service_name` and the env prefix."""

    service_name: ClassVar[str] = "service"
    default_grpc_port: ClassVar[int] = 0

    grpc_host: str = "127.0.0.1"
    grpc_port: int = Field(-1, ge=-1, le=65535)
    # SQLAlchemy URL; empty means the embedded default, a SQLite file under var/.
    database_url: str | None = None
    # Run Alembic migrations at start-up (default on outside production).
    migrate_on_start: bool | None = None

    @model_validator(mode="after")
    def _defaults(self) -> ServiceSettings:
        if self.grpc_port == -1:
            self.grpc_port = self.default_grpc_port
        if self.migrate_on_start is None:
            self.migrate_on_start = not self.is_production
        if self.is_production and (not self.database_url or self.database_url.startswith("sqlite")):
            raise ValueError(
                f"{self.model_config.get('env_prefix', '')}DATABASE_URL must name a PostgreSQL "
                "database in production"
            )
        return self

    @property
    def resolved_database_url(self) -> str:
        """The database URL in force (the SQLite default when none is configured)."""
        return self.database_url or f"sqlite:///{self.var_dir / (self.service_name + '.db')}"


def load(settings_class: type[BaseSettings], **overrides: Any) -> Any:
    """Build settings from the environment, turning validation errors into one clear message."""
    from pydantic import ValidationError  # noqa: PLC0415

    try:
        return settings_class(**overrides)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in error.errors()
        )
        raise SettingsError(f"invalid {settings_class.__name__}: {problems}") from None
