"""Wiring of the provider service: storage, secrets, handlers, servicer and the webhook worker."""

from __future__ import annotations

import functools
import pathlib

from clearhouse.provider.v1 import provider_pb2, provider_pb2_grpc

from chassis import db, secrets
from chassis.grpc_server import service_full_name
from chassis.service import ServiceDefinition
from provider_sim.adapters.repository import SqlUnitOfWork
from provider_sim.adapters.webhook_sender import HttpWebhookSender
from provider_sim.domain.model import PROVIDER_A, PROVIDER_B
from provider_sim.entrypoints.grpc_servicer import ProviderServicer
from provider_sim.entrypoints.worker import run_worker
from provider_sim.service_layer.handlers import ProviderService
from provider_sim.service_layer.webhooks import WebhookDispatcher
from provider_sim.settings import ProviderSettings

MIGRATIONS = pathlib.Path(__file__).resolve().parent / "migrations"


def webhook_secret_path(var_dir: pathlib.Path, provider: str) -> pathlib.Path:
    """Dev secret file of a provider's webhook signing key (the payments service reads it too)."""
    return var_dir / "secrets" / f"{provider}_webhook.key"


def webhook_secrets(settings: ProviderSettings) -> dict[str, str]:
    """Signing secret per provider: configured, else the dev secret under var/secrets/."""
    configured = {PROVIDER_A: settings.webhook_secret_a, PROVIDER_B: settings.webhook_secret_b}
    return {
        provider: value or secrets.load_or_create(webhook_secret_path(settings.var_dir, provider))
        for provider, value in configured.items()
    }


async def build(settings: ProviderSettings) -> ServiceDefinition:
    """Migrate the database (outside production) and assemble the servicer and the worker."""
    if settings.migrate_on_start:
        await db.migrate(MIGRATIONS, settings.resolved_database_url)
    # No span per SQL statement: each RPC's server span already covers its one short
    # transaction, and exporting four or five statement spans per call cost more CPU than the
    # call's own work.
    engine = db.create_engine(settings.resolved_database_url, instrument=False)
    uow = SqlUnitOfWork(engine)
    fingerprint_key = settings.fingerprint_key or secrets.load_or_create(
        settings.var_dir / "secrets" / "provider_fingerprint.key"
    )
    service = ProviderService(
        uow,
        fingerprint_key=fingerprint_key,
        latency_scale=settings.latency_scale,
        chargeback_delay_seconds=settings.chargeback_delay_seconds,
        settlements_dir=settings.var_dir / "settlements",
    )
    sender = HttpWebhookSender(settings.webhook_timeout_seconds)
    dispatcher = WebhookDispatcher(
        service,
        uow,
        sender,
        url_template=settings.webhook_url,
        secrets=webhook_secrets(settings),
        retry_base_seconds=settings.webhook_retry_base_seconds,
    )
    worker = functools.partial(run_worker, service, dispatcher, settings.worker_poll_seconds)
    worker.__name__ = "provider_worker"  # type: ignore[attr-defined]
    return ServiceDefinition(
        registrations=[(provider_pb2_grpc.add_ProviderServicer_to_server, ProviderServicer(service))],
        service_names=[service_full_name(provider_pb2, "Provider")],
        background=[worker],
        on_stop=[sender.close, engine.dispose],
        extras={"engine": engine, "service": service, "dispatcher": dispatcher},
    )
