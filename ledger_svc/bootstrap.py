"""Wiring of the ledger service: storage, handlers and servicers."""

from __future__ import annotations

import pathlib

from clearhouse.ledger.v1 import ledger_pb2, ledger_pb2_grpc

from chassis import db
from chassis.grpc_server import service_full_name
from chassis.service import ServiceDefinition
from ledger_svc.entrypoints.grpc_servicer import LedgerServicer
from ledger_svc.settings import LedgerSettings

MIGRATIONS = pathlib.Path(__file__).resolve().parent / "migrations"


async def build(settings: LedgerSettings) -> ServiceDefinition:
    """Migrate the database (outside production) and assemble the servicers."""
    if settings.migrate_on_start:
        await db.migrate(MIGRATIONS, settings.resolved_database_url)
    engine = db.create_engine(settings.resolved_database_url)
    return ServiceDefinition(
        registrations=[
            (ledger_pb2_grpc.add_LedgerServicer_to_server, LedgerServicer()),  # type: ignore[abstract]
        ],
        service_names=[service_full_name(ledger_pb2, "Ledger")],
        on_stop=[engine.dispose],
        extras={"engine": engine},
    )
