"""Settings of the ledger service (environment prefix LEDGER_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from chassis.settings import ServiceSettings

WRITERS_POSTGRESQL = 2


class LedgerSettings(ServiceSettings):
    """The double-entry ledger: gRPC port 50053 by default."""

    model_config = SettingsConfigDict(env_prefix="LEDGER_", extra="ignore", validate_default=True)
    service_name: ClassVar[str] = "ledger"
    default_grpc_port: ClassVar[int] = 50053

    # How often the expiry worker releases pending transfers whose timeout passed, seconds;
    # 0 turns the worker off (ExpirePendingTransfers still works on demand).
    expiry_interval_seconds: float = Field(1.0, ge=0, le=3600)
    # Concurrent write transactions per process; 0 = automatic (1 on SQLite, which serializes
    # writers anyway; WRITERS_POSTGRESQL on PostgreSQL, where transactions on disjoint accounts
    # proceed in parallel and commits share WAL flushes).
    writers: int = Field(0, ge=0, le=32)

    @property
    def resolved_writers(self) -> int:
        """Write transactions this process runs at once."""
        if self.writers:
            return self.writers
        return 1 if self.resolved_database_url.startswith("sqlite") else WRITERS_POSTGRESQL
