"""gRPC entry point of the provider service: thin translation between protobuf and handlers."""

from __future__ import annotations

import datetime

import grpc
from clearhouse.provider.v1 import provider_pb2, provider_pb2_grpc
from google.protobuf import timestamp_pb2
from typing_extensions import override

from chassis import context as call_context
from chassis import errors
from provider_sim.domain.injection import FailureConfig
from provider_sim.domain.model import Card, Refund, Transaction
from provider_sim.service_layer import commands
from provider_sim.service_layer.handlers import ProviderService

# Identities (mTLS certificate names) allowed to call the acquirers: the payments service, and
# operators' tools. Plaintext mode (local debugging) carries no identity and is not checked.
ALLOWED_CALLERS = frozenset({"payments", "tools"})

_STATUS = provider_pb2.Transaction.Status


def _authorize_caller() -> None:
    peer = call_context.current().peer_service
    if peer is not None and peer not in ALLOWED_CALLERS:
        raise errors.PermissionDenied(
            "this caller may not use the provider simulator", reason="CALLER_NOT_ALLOWED"
        )


def _deadline(context: grpc.aio.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else float(remaining)


def _timestamp(value: datetime.datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def transaction_to_proto(transaction: Transaction) -> provider_pb2.Transaction:
    """The proto of a domain transaction."""
    return provider_pb2.Transaction(
        id=transaction.id,
        provider=transaction.provider,
        reference=transaction.reference,
        merchant_id=transaction.merchant_id,
        status=_STATUS.Value(transaction.status.value),
        amount=transaction.amount,
        currency=transaction.currency,
        amount_captured=transaction.amount_captured,
        amount_refunded=transaction.amount_refunded,
        decline_code=transaction.decline_code,
        message=transaction.message,
        last4=transaction.last4,
        card_fingerprint=transaction.card_fingerprint,
        authorization_code=transaction.authorization_code,
        created_at=_timestamp(transaction.created_at),
        updated_at=_timestamp(transaction.updated_at),
        captured_at=_timestamp(transaction.captured_at),
    )


def refund_to_proto(refund: Refund) -> provider_pb2.ProviderRefund:
    """The proto of a domain refund."""
    return provider_pb2.ProviderRefund(
        id=refund.id,
        transaction_id=refund.transaction_id,
        reference=refund.reference,
        amount=refund.amount,
        currency=refund.currency,
        created_at=_timestamp(refund.created_at),
    )


def config_to_proto(config: FailureConfig) -> provider_pb2.FailureConfig:
    """The proto of a failure configuration."""
    return provider_pb2.FailureConfig(
        decline_rate=config.decline_rate,
        error_rate=config.error_rate,
        timeout_rate=config.timeout_rate,
        latency_ms_min=config.latency_ms_min,
        latency_ms_max=config.latency_ms_max,
        duplicate_webhook_rate=config.duplicate_webhook_rate,
        settlement_mismatch_rate=config.settlement_mismatch_rate,
        seed=config.seed,
    )


class ProviderServicer(provider_pb2_grpc.ProviderServicer):
    """gRPC `clearhouse.provider.v1.Provider`: proto → command → handler → result → proto."""

    def __init__(self, service: ProviderService) -> None:
        self.service = service

    @override
    async def Authorize(
        self, request: provider_pb2.AuthorizeRequest, context: grpc.aio.ServicerContext
    ) -> provider_pb2.AuthorizeResponse:
        _authorize_caller()
        card = request.card
        command = commands.Authorize(
            provider=request.provider,
            reference=request.reference,
            amount=request.amount,
            currency=request.currency,
            card=Card(number=card.number, exp_month=card.exp_month, exp_year=card.exp_year, cvc=card.cvc),
            merchant_id=request.merchant_id,
        )
        result = await self.service.authorize(command, deadline_seconds=_deadline(context))
        return provider_pb2.AuthorizeResponse(
            transaction=transaction_to_proto(result.transaction), replayed=result.replayed
        )

    @override
    async def Capture(
        self, request: provider_pb2.CaptureRequest, context: grpc.aio.ServicerContext
    ) -> provider_pb2.CaptureResponse:
        _authorize_caller()
        command = commands.Capture(
            request.provider, request.transaction_id, request.amount, request.reference
        )
        result = await self.service.capture(command, deadline_seconds=_deadline(context))
        return provider_pb2.CaptureResponse(
            transaction=transaction_to_proto(result.transaction), replayed=result.replayed
        )

    @override
    async def Void(
        self, request: provider_pb2.VoidRequest, context: grpc.aio.ServicerContext
    ) -> provider_pb2.VoidResponse:
        _authorize_caller()
        transaction = await self.service.void(
            commands.Void(request.provider, request.transaction_id), deadline_seconds=_deadline(context)
        )
        return provider_pb2.VoidResponse(transaction=transaction_to_proto(transaction))

    @override
    async def Refund(
        self, request: provider_pb2.RefundRequest, context: grpc.aio.ServicerContext
    ) -> provider_pb2.RefundResponse:
        _authorize_caller()
        command = commands.RefundCommand(
            request.provider, request.transaction_id, request.amount, request.reference
        )
        result = await self.service.refund(command, deadline_seconds=_deadline(context))
        return provider_pb2.RefundResponse(
            refund=refund_to_proto(result.refund),
            transaction=transaction_to_proto(result.transaction),
            replayed=result.replayed,
        )

    @override
    async def GetTransaction(
        self, request: provider_pb2.GetTransactionRequest, context: grpc.aio.ServicerContext
    ) -> provider_pb2.GetTransactionResponse:
        _authorize_caller()
        view = await self.service.get_transaction(request.provider, request.transaction_id, request.reference)
        return provider_pb2.GetTransactionResponse(
            transaction=transaction_to_proto(view.transaction),
            refunds=[refund_to_proto(refund) for refund in view.refunds],
        )

    @override
    async def ConfigureFailures(
        self, request: provider_pb2.ConfigureFailuresRequest, context: grpc.aio.ServicerContext
    ) -> provider_pb2.ConfigureFailuresResponse:
        _authorize_caller()
        given = request.config
        config = FailureConfig(
            decline_rate=given.decline_rate,
            error_rate=given.error_rate,
            timeout_rate=given.timeout_rate,
            latency_ms_min=given.latency_ms_min,
            latency_ms_max=given.latency_ms_max,
            duplicate_webhook_rate=given.duplicate_webhook_rate,
            settlement_mismatch_rate=given.settlement_mismatch_rate,
            seed=given.seed,
        )
        applied = self.service.configure_failures(request.provider, config)
        return provider_pb2.ConfigureFailuresResponse(config=config_to_proto(applied))

    @override
    async def GetState(
        self, request: provider_pb2.GetStateRequest, context: grpc.aio.ServicerContext
    ) -> provider_pb2.GetStateResponse:
        _authorize_caller()
        states = []
        for view in self.service.state(request.provider):
            counters = view.counters
            states.append(
                provider_pb2.ProviderState(
                    provider=view.profile.name,
                    approval_rate=view.profile.approval_rate,
                    latency_ms_min=view.profile.latency_ms_min,
                    latency_ms_max=view.profile.latency_ms_max,
                    fee_basis_points=view.profile.fee_basis_points,
                    latency_scale=view.latency_scale,
                    failures=config_to_proto(view.failures),
                    counters=provider_pb2.ProviderCounters(
                        authorizations=counters.authorizations,
                        approvals=counters.approvals,
                        declines=counters.declines,
                        errors=counters.errors,
                        timeouts=counters.timeouts,
                        captures=counters.captures,
                        voids=counters.voids,
                        refunds=counters.refunds,
                        webhooks_sent=counters.webhooks_sent,
                        webhook_failures=counters.webhook_failures,
                    ),
                )
            )
        return provider_pb2.GetStateResponse(providers=states)

    @override
    async def GenerateSettlementReport(
        self, request: provider_pb2.GenerateSettlementReportRequest, context: grpc.aio.ServicerContext
    ) -> provider_pb2.GenerateSettlementReportResponse:
        _authorize_caller()
        result = await self.service.settlement_report(request.provider, request.date)
        return provider_pb2.GenerateSettlementReportResponse(
            csv=result.csv,
            path=result.path,
            rows=[
                provider_pb2.SettlementReportRow(
                    reference=row.reference,
                    merchant_reference=row.merchant_reference,
                    type=row.type.value,
                    amount=row.amount,
                    currency=row.currency,
                    fee=row.fee,
                    net=row.net,
                    settled_at=_timestamp(row.settled_at),
                    merchant_id=row.merchant_id,
                )
                for row in result.report.rows
            ],
            injected_mismatches=[
                provider_pb2.InjectedMismatch(
                    kind=mismatch.kind.value,
                    merchant_reference=mismatch.merchant_reference,
                    expected_amount=mismatch.expected_amount,
                    reported_amount=mismatch.reported_amount,
                )
                for mismatch in result.report.mismatches
            ],
        )

    @override
    async def TriggerChargeback(
        self, request: provider_pb2.TriggerChargebackRequest, context: grpc.aio.ServicerContext
    ) -> provider_pb2.TriggerChargebackResponse:
        _authorize_caller()
        result = await self.service.trigger_chargeback(
            commands.TriggerChargeback(
                request.provider, request.transaction_id, request.amount, request.reason
            )
        )
        return provider_pb2.TriggerChargebackResponse(event_id=result.event_id, dispute_id=result.dispute.id)

    @override
    async def ResolveChargeback(
        self, request: provider_pb2.ResolveChargebackRequest, context: grpc.aio.ServicerContext
    ) -> provider_pb2.ResolveChargebackResponse:
        _authorize_caller()
        outcome = request.outcome
        if outcome not in (
            provider_pb2.ResolveChargebackRequest.WON,
            provider_pb2.ResolveChargebackRequest.LOST,
        ):
            raise errors.InvalidArgument(
                "outcome must be WON or LOST",
                reason="INVALID_OUTCOME",
                field_violations=[errors.FieldViolation("outcome", "must be WON or LOST")],
            )
        won = outcome == provider_pb2.ResolveChargebackRequest.WON
        result = await self.service.resolve_chargeback(
            commands.ResolveChargeback(request.provider, request.dispute_id, won)
        )
        view = await self.service.get_transaction(request.provider, result.dispute.transaction_id, "")
        return provider_pb2.ResolveChargebackResponse(
            event_id=result.event_id,
            dispute_id=result.dispute.id,
            transaction=transaction_to_proto(view.transaction),
        )
