"""Wiring of the ledger service: storage, handlers and servicers."""

from __future__ import annotations

import pathlib
from collections.abc import Awaitable, Callable

from clearhouse.ledger.v1 import ledger_pb2, ledger_pb2_grpc

from chassis import db
from chassis.grpc_server import service_full_name
from chassis.service import ServiceDefinition
from ledger_svc.entrypoints.expiry_worker import expiry_worker
from ledger_svc.entrypoints.grpc_servicer import LedgerServicer
from ledger_svc.service_layer.handlers import Clock, LedgerService, wall_clock_us
from ledger_svc.settings import LedgerSettings

MIGRATIONS = pathlib.Path(__file__).resolve().parent / "migrations"


async def build(settings: LedgerSettings, *, clock: Clock = wall_clock_us) -> ServiceDefinition:
    """Migrate the database (outside production) and assemble the servicers and workers.

    `clock` (microseconds since the epoch) is injectable so tests can move time for expiries.
    """
    if settings.migrate_on_start:
        await db.migrate(MIGRATIONS, settings.resolved_database_url)
    # No span per SQL statement: a grouped write runs a dozen statements, and exporting their
    # spans cost more CPU than the write itself. Each grouped transaction gets one span instead
    # (`ledger.write_group`, linked to the calls it carries; see write_queue.py).
    engine = db.create_engine(settings.resolved_database_url, instrument=False)
    service = LedgerService(engine, clock, writers=settings.resolved_writers)
    background: list[Callable[[], Awaitable[None]]] = [service.write_queue.run]
    if settings.expiry_interval_seconds > 0:
        background.append(expiry_worker(service, settings.expiry_interval_seconds))
    return ServiceDefinition(
        registrations=[
            (
                ledger_pb2_grpc.add_LedgerServicer_to_server,
                LedgerServicer(service, plaintext=settings.plaintext),
            ),
        ],
        service_names=[service_full_name(ledger_pb2, "Ledger")],
        background=background,
        on_stop=[engine.dispose],
        extras={"engine": engine, "service": service},
    )
