"""Wiring of the provider service: storage, handlers and servicers."""

from __future__ import annotations

import pathlib

from clearhouse.provider.v1 import provider_pb2, provider_pb2_grpc

from chassis import db
from chassis.grpc_server import service_full_name
from chassis.service import ServiceDefinition
from provider_sim.entrypoints.grpc_servicer import ProviderServicer
from provider_sim.settings import ProviderSettings

MIGRATIONS = pathlib.Path(__file__).resolve().parent / "migrations"


async def build(settings: ProviderSettings) -> ServiceDefinition:
    """Migrate the database (outside production) and assemble the servicers."""
    if settings.migrate_on_start:
        await db.migrate(MIGRATIONS, settings.resolved_database_url)
    engine = db.create_engine(settings.resolved_database_url)
    return ServiceDefinition(
        registrations=[
            (provider_pb2_grpc.add_ProviderServicer_to_server, ProviderServicer()),  # type: ignore[abstract]
        ],
        service_names=[service_full_name(provider_pb2, "Provider")],
        on_stop=[engine.dispose],
        extras={"engine": engine},
    )
