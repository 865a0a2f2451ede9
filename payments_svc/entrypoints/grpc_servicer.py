"""gRPC entry points of the payments service: thin translation between protobuf and handlers."""

from __future__ import annotations

from clearhouse.payments.v1 import (
    admin_pb2_grpc,
    balance_pb2_grpc,
    disputes_pb2_grpc,
    events_pb2_grpc,
    merchants_pb2_grpc,
    payment_intents_pb2_grpc,
    payouts_pb2_grpc,
    provider_webhooks_pb2_grpc,
    reconciliation_pb2_grpc,
    refunds_pb2_grpc,
    risk_pb2_grpc,
    settlements_pb2_grpc,
    tokens_pb2_grpc,
    webhook_endpoints_pb2_grpc,
)


class MerchantsServicer(merchants_pb2_grpc.MerchantsServicer):
    """gRPC `clearhouse.payments.v1.Merchants`; RPCs not yet implemented answer UNIMPLEMENTED."""


class PaymentIntentsServicer(payment_intents_pb2_grpc.PaymentIntentsServicer):
    """gRPC `clearhouse.payments.v1.PaymentIntents`; RPCs not yet implemented answer UNIMPLEMENTED."""


class TokensServicer(tokens_pb2_grpc.TokensServicer):
    """gRPC `clearhouse.payments.v1.Tokens`; RPCs not yet implemented answer UNIMPLEMENTED."""


class RefundsServicer(refunds_pb2_grpc.RefundsServicer):
    """gRPC `clearhouse.payments.v1.Refunds`; RPCs not yet implemented answer UNIMPLEMENTED."""


class DisputesServicer(disputes_pb2_grpc.DisputesServicer):
    """gRPC `clearhouse.payments.v1.Disputes`; RPCs not yet implemented answer UNIMPLEMENTED."""


class ProviderWebhooksServicer(provider_webhooks_pb2_grpc.ProviderWebhooksServicer):
    """gRPC `clearhouse.payments.v1.ProviderWebhooks`; RPCs not yet implemented answer UNIMPLEMENTED."""


class WebhookEndpointsServicer(webhook_endpoints_pb2_grpc.WebhookEndpointsServicer):
    """gRPC `clearhouse.payments.v1.WebhookEndpoints`; RPCs not yet implemented answer UNIMPLEMENTED."""


class EventsServicer(events_pb2_grpc.EventsServicer):
    """gRPC `clearhouse.payments.v1.Events`; RPCs not yet implemented answer UNIMPLEMENTED."""


class BalancesServicer(balance_pb2_grpc.BalancesServicer):
    """gRPC `clearhouse.payments.v1.Balances`; RPCs not yet implemented answer UNIMPLEMENTED."""


class SettlementsServicer(settlements_pb2_grpc.SettlementsServicer):
    """gRPC `clearhouse.payments.v1.Settlements`; RPCs not yet implemented answer UNIMPLEMENTED."""


class PayoutsServicer(payouts_pb2_grpc.PayoutsServicer):
    """gRPC `clearhouse.payments.v1.Payouts`; RPCs not yet implemented answer UNIMPLEMENTED."""


class ReconciliationsServicer(reconciliation_pb2_grpc.ReconciliationsServicer):
    """gRPC `clearhouse.payments.v1.Reconciliations`; RPCs not yet implemented answer UNIMPLEMENTED."""


class RiskServicer(risk_pb2_grpc.RiskServicer):
    """gRPC `clearhouse.payments.v1.Risk`; RPCs not yet implemented answer UNIMPLEMENTED."""


class AdminServicer(admin_pb2_grpc.AdminServicer):
    """gRPC `clearhouse.payments.v1.Admin`; RPCs not yet implemented answer UNIMPLEMENTED."""
