"""Wiring of the payments service: storage, handlers and servicers."""

from __future__ import annotations

import pathlib

from clearhouse.payments.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    balance_pb2,
    balance_pb2_grpc,
    disputes_pb2,
    disputes_pb2_grpc,
    events_pb2,
    events_pb2_grpc,
    merchants_pb2,
    merchants_pb2_grpc,
    payment_intents_pb2,
    payment_intents_pb2_grpc,
    payouts_pb2,
    payouts_pb2_grpc,
    provider_webhooks_pb2,
    provider_webhooks_pb2_grpc,
    reconciliation_pb2,
    reconciliation_pb2_grpc,
    refunds_pb2,
    refunds_pb2_grpc,
    risk_pb2,
    risk_pb2_grpc,
    settlements_pb2,
    settlements_pb2_grpc,
    tokens_pb2,
    tokens_pb2_grpc,
    webhook_endpoints_pb2,
    webhook_endpoints_pb2_grpc,
)

from chassis import db
from chassis.grpc_server import Registration, service_full_name
from chassis.service import ServiceDefinition
from payments_svc.entrypoints import grpc_servicer
from payments_svc.settings import PaymentsSettings

MIGRATIONS = pathlib.Path(__file__).resolve().parent / "migrations"

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


def registrations() -> list[Registration]:
    """Every payments servicer with its registration function."""
    return [
        (merchants_pb2_grpc.add_MerchantsServicer_to_server, grpc_servicer.MerchantsServicer()),  # type: ignore[abstract]
        (
            payment_intents_pb2_grpc.add_PaymentIntentsServicer_to_server,
            grpc_servicer.PaymentIntentsServicer(),  # type: ignore[abstract]
        ),
        (tokens_pb2_grpc.add_TokensServicer_to_server, grpc_servicer.TokensServicer()),  # type: ignore[abstract]
        (refunds_pb2_grpc.add_RefundsServicer_to_server, grpc_servicer.RefundsServicer()),  # type: ignore[abstract]
        (disputes_pb2_grpc.add_DisputesServicer_to_server, grpc_servicer.DisputesServicer()),  # type: ignore[abstract]
        (
            provider_webhooks_pb2_grpc.add_ProviderWebhooksServicer_to_server,
            grpc_servicer.ProviderWebhooksServicer(),  # type: ignore[abstract]
        ),
        (
            webhook_endpoints_pb2_grpc.add_WebhookEndpointsServicer_to_server,
            grpc_servicer.WebhookEndpointsServicer(),  # type: ignore[abstract]
        ),
        (events_pb2_grpc.add_EventsServicer_to_server, grpc_servicer.EventsServicer()),  # type: ignore[abstract]
        (balance_pb2_grpc.add_BalancesServicer_to_server, grpc_servicer.BalancesServicer()),  # type: ignore[abstract]
        (settlements_pb2_grpc.add_SettlementsServicer_to_server, grpc_servicer.SettlementsServicer()),  # type: ignore[abstract]
        (payouts_pb2_grpc.add_PayoutsServicer_to_server, grpc_servicer.PayoutsServicer()),  # type: ignore[abstract]
        (
            reconciliation_pb2_grpc.add_ReconciliationsServicer_to_server,
            grpc_servicer.ReconciliationsServicer(),  # type: ignore[abstract]
        ),
        (risk_pb2_grpc.add_RiskServicer_to_server, grpc_servicer.RiskServicer()),  # type: ignore[abstract]
        (admin_pb2_grpc.add_AdminServicer_to_server, grpc_servicer.AdminServicer()),  # type: ignore[abstract]
    ]


async def build(settings: PaymentsSettings) -> ServiceDefinition:
    """Migrate the database (outside production) and assemble the servicers."""
    if settings.migrate_on_start:
        await db.migrate(MIGRATIONS, settings.resolved_database_url)
    engine = db.create_engine(settings.resolved_database_url)
    return ServiceDefinition(
        registrations=registrations(),
        service_names=SERVICE_NAMES,
        on_stop=[engine.dispose],
        extras={"engine": engine},
    )
