"""Wiring of the vault service: storage, handlers and servicers."""

from __future__ import annotations

import pathlib

from clearhouse.vault.v1 import vault_pb2, vault_pb2_grpc

from chassis import db
from chassis.grpc_server import service_full_name
from chassis.service import ServiceDefinition
from vault_svc.entrypoints.grpc_servicer import VaultServicer
from vault_svc.settings import VaultSettings

MIGRATIONS = pathlib.Path(__file__).resolve().parent / "migrations"


async def build(settings: VaultSettings) -> ServiceDefinition:
    """Migrate the database (outside production) and assemble the servicers."""
    if settings.migrate_on_start:
        await db.migrate(MIGRATIONS, settings.resolved_database_url)
    engine = db.create_engine(settings.resolved_database_url)
    return ServiceDefinition(
        registrations=[
            (vault_pb2_grpc.add_VaultServicer_to_server, VaultServicer()),  # type: ignore[abstract]
        ],
        service_names=[service_full_name(vault_pb2, "Vault")],
        on_stop=[engine.dispose],
        extras={"engine": engine},
    )
