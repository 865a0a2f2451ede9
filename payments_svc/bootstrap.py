"""Wiring of the payments service: storage, clients, handlers, servicers and workers."""

from __future__ import annotations

import datetime
import pathlib

from clearhouse.payments.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    balance_pb2,
    balance_pb2_grpc,
    disputes_pb2,
    events_pb2,
    events_pb2_grpc,
    merchants_pb2,
    merchants_pb2_grpc,
    payment_intents_pb2,
    payment_intents_pb2_grpc,
    payouts_pb2,
    provider_webhooks_pb2,
    reconciliation_pb2,
    refunds_pb2,
    risk_pb2,
    risk_pb2_grpc,
    settlements_pb2,
    tokens_pb2,
    tokens_pb2_grpc,
    webhook_endpoints_pb2,
)

from chassis import cache, db
from chassis.channels import open_channel
from chassis.grpc_server import Registration, service_full_name
from chassis.service import ServiceDefinition
from payments_svc.adapters.circuit_board import CircuitBoard
from payments_svc.adapters.ledger_client import LedgerClient
from payments_svc.adapters.provider_client import ProviderClient
from payments_svc.adapters.risk_counters import RiskCounters
from payments_svc.adapters.vault_client import VaultClient
from payments_svc.domain.breaker import BreakerConfig
from payments_svc.entrypoints import convert, grpc_servicer, grpc_servicer_money
from payments_svc.entrypoints.workers import worker_loop
from payments_svc.part2 import build_part2
from payments_svc.service_layer.auth import Authenticator
from payments_svc.service_layer.cards import CardService
from payments_svc.service_layer.idempotency import Idempotency
from payments_svc.service_layer.jobs import Jobs
from payments_svc.service_layer.merchants import MerchantService
from payments_svc.service_layer.payments import PaymentsConfig, PaymentService
from payments_svc.service_layer.reads import ReadService
from payments_svc.settings import PaymentsSettings

MIGRATIONS = pathlib.Path(__file__).resolve().parent / "migrations"
IDENTITY = "payments"
# A resolver's lease covers a reveal, an authorize or lookup, a capture and a ledger call.
RESOLVE_LEASE_MARGIN_SECONDS = 5.0

SERVICE_NAMES = [
    service_full_name(merchants_pb2, "Merchants"),
    service_full_name(payment_intents_pb2, "PaymentIntents"),
    service_full_name(tokens_pb2, "Tokens"),
    service_full_name(refunds_pb2, "Refunds"),
    service_full_name(disputes_pb2, "Disputes"),
    service_full_name(provider_webhooks_pb2, "ProviderWebhooks"),
    service_full_name(webhook_endpoints_pb2, "WebhookEndpoints"),
    service_full_name(events_pb2, "Events"),
    service_full_name(balance_pb2, "Balances"),
    service_full_name(settlements_pb2, "Settlements"),
    service_full_name(payouts_pb2, "Payouts"),
    service_full_name(reconciliation_pb2, "Reconciliations"),
    service_full_name(risk_pb2, "Risk"),
    service_full_name(admin_pb2, "Admin"),
]


def utc_now() -> datetime.datetime:
    """The service clock."""
    return datetime.datetime.now(datetime.UTC)


def registrations(app: grpc_servicer.App, money: grpc_servicer_money.MoneyApp) -> list[Registration]:
    """Every payments servicer with its registration function."""
    s = grpc_servicer
    return [
        (merchants_pb2_grpc.add_MerchantsServicer_to_server, s.MerchantsServicer(app)),
        (payment_intents_pb2_grpc.add_PaymentIntentsServicer_to_server, s.PaymentIntentsServicer(app)),
        (tokens_pb2_grpc.add_TokensServicer_to_server, s.TokensServicer(app)),
        (events_pb2_grpc.add_EventsServicer_to_server, s.EventsServicer(app)),
        (balance_pb2_grpc.add_BalancesServicer_to_server, s.BalancesServicer(app)),
        (risk_pb2_grpc.add_RiskServicer_to_server, s.RiskServicer(app)),
        (admin_pb2_grpc.add_AdminServicer_to_server, s.AdminServicer(app)),
        *grpc_servicer_money.registrations(money),
    ]


async def build(settings: PaymentsSettings) -> ServiceDefinition:
    """Migrate the database (outside production), open clients and assemble the servicers."""
    if settings.migrate_on_start:
        await db.migrate(MIGRATIONS, settings.resolved_database_url)
    engine = db.create_engine(settings.resolved_database_url)
    shared = cache.create_cache(settings.redis_url, prefix=settings.cache_prefix)
    vault_channel = open_channel(settings.vault_address, settings, IDENTITY)
    ledger_channel = open_channel(settings.ledger_address, settings, IDENTITY)
    provider_channel = open_channel(settings.provider_address, settings, IDENTITY)
    vault = VaultClient(vault_channel, settings.dependency_timeout_seconds)
    ledger = LedgerClient(ledger_channel, settings.dependency_timeout_seconds)
    provider = ProviderClient(
        provider_channel, settings.provider_timeout_seconds, settings.dependency_timeout_seconds
    )
    board = CircuitBoard(
        shared,
        BreakerConfig(
            failure_threshold=settings.breaker_failure_threshold,
            recovery_timeout_seconds=settings.breaker_recovery_timeout_seconds,
            half_open_max_calls=settings.breaker_half_open_max_calls,
        ),
    )
    risk_counters = RiskCounters(shared)
    idempotency = Idempotency(engine, settings.resolved_idempotency_hash_key(), utc_now)
    payments = PaymentService(
        engine=engine,
        idempotency=idempotency,
        vault=vault,
        ledger=ledger,
        provider=provider,
        board=board,
        risk_counters=risk_counters,
        render_intent=convert.render_intent,
        clock=utc_now,
        config=PaymentsConfig(
            authorization_window_seconds=settings.authorization_window_seconds,
            resolve_lease_seconds=2 * settings.provider_timeout_seconds
            + 3 * settings.dependency_timeout_seconds
            + RESOLVE_LEASE_MARGIN_SECONDS,
        ),
    )
    jobs = Jobs(
        engine=engine,
        payments=payments,
        encode_intent_response=grpc_servicer.encode_intent_response,
        retention_seconds=settings.idempotency_retention_seconds,
        clock=utc_now,
    )
    app = grpc_servicer.App(
        authenticator=Authenticator(engine, settings.resolved_admin_key()),
        idempotency=idempotency,
        merchants=MerchantService(engine, idempotency, utc_now),
        payments=payments,
        cards=CardService(engine, idempotency, vault, risk_counters, utc_now),
        reads=ReadService(engine, ledger),
        jobs=jobs,
        board=board,
        provider=provider,
        vault=vault,
        default_deadline_seconds=settings.default_deadline_seconds,
    )

    money = build_part2(
        settings,
        engine=engine,
        idempotency=idempotency,
        ledger=ledger,
        app=app,
        ledger_channel=ledger_channel,
        provider_channel=provider_channel,
    )
    jobs.passes.update(money.jobs)

    async def close_clients() -> None:
        await money.close()
        for channel in (vault_channel, ledger_channel, provider_channel):
            await channel.close()
        await shared.close()

    background = [worker_loop(jobs, settings.worker_interval_seconds)] if settings.workers_enabled else []
    return ServiceDefinition(
        registrations=registrations(app, money.app),
        service_names=SERVICE_NAMES,
        background=background,
        on_stop=[close_clients, engine.dispose],
        extras={
            "engine": engine,
            "app": app,
            "jobs": jobs,
            "board": board,
            "cache": shared,
            "money": money.app,
        },
    )
