# ruff: noqa: N802 - RPC method names are fixed by the generated servicer base classes.
"""gRPC entry points of part 2. Thin: proto → command → handler → proto.

Refunds, disputes, provider webhooks, webhook endpoints, settlements, payouts, reconciliations.
"""

from __future__ import annotations

import dataclasses

import grpc
from clearhouse.payments.v1 import (
    disputes_pb2,
    disputes_pb2_grpc,
    payouts_pb2,
    payouts_pb2_grpc,
    provider_webhooks_pb2,
    provider_webhooks_pb2_grpc,
    reconciliation_pb2,
    reconciliation_pb2_grpc,
    refunds_pb2,
    refunds_pb2_grpc,
    settlements_pb2,
    settlements_pb2_grpc,
    webhook_endpoints_pb2,
    webhook_endpoints_pb2_grpc,
)
from google.protobuf.message import Message

from chassis import context as call_context
from chassis import errors
from chassis.grpc_server import Registration
from payments_svc.entrypoints import convert_money as convert
from payments_svc.entrypoints.grpc_servicer import App, register_responses
from payments_svc.service_layer.disputes import DisputeService
from payments_svc.service_layer.payouts import PayoutService
from payments_svc.service_layer.reconciliation import ReconciliationService
from payments_svc.service_layer.refunds import CreateRefund, RefundService
from payments_svc.service_layer.settlement import SettlementService
from payments_svc.service_layer.webhooks import WebhookService

_SERVICE = "/clearhouse.payments.v1."
_WE = webhook_endpoints_pb2


@dataclasses.dataclass
class MoneyApp:
    """The part-2 handlers, beside part 1's App (authentication, idempotency)."""

    app: App
    refunds: RefundService
    disputes: DisputeService
    webhooks: WebhookService
    settlements: SettlementService
    payouts: PayoutService
    reconciliations: ReconciliationService


def _without_endpoint_secret(message: _WE.CreateWebhookEndpointResponse) -> _WE.CreateWebhookEndpointResponse:
    copy = _WE.CreateWebhookEndpointResponse()
    copy.CopyFrom(message)
    copy.webhook_endpoint.secret = ""
    return copy


register_responses(
    {
        f"{_SERVICE}Refunds/CreateRefund": refunds_pb2.CreateRefundResponse,
        f"{_SERVICE}Refunds/ApproveRefund": refunds_pb2.ApproveRefundResponse,
        f"{_SERVICE}Refunds/RejectRefund": refunds_pb2.RejectRefundResponse,
        f"{_SERVICE}Disputes/CreateDispute": disputes_pb2.CreateDisputeResponse,
        f"{_SERVICE}Disputes/SubmitDisputeEvidence": disputes_pb2.SubmitDisputeEvidenceResponse,
        f"{_SERVICE}Disputes/ResolveDispute": disputes_pb2.ResolveDisputeResponse,
        f"{_SERVICE}WebhookEndpoints/CreateWebhookEndpoint": _WE.CreateWebhookEndpointResponse,
        f"{_SERVICE}WebhookEndpoints/DeleteWebhookEndpoint": _WE.DeleteWebhookEndpointResponse,
        f"{_SERVICE}WebhookEndpoints/RedeliverWebhook": _WE.RedeliverWebhookResponse,
        f"{_SERVICE}Settlements/RunSettlement": settlements_pb2.RunSettlementResponse,
        f"{_SERVICE}Payouts/CreatePayout": payouts_pb2.CreatePayoutResponse,
        f"{_SERVICE}Reconciliations/CreateReconciliation": reconciliation_pb2.CreateReconciliationResponse,
    }
)


class RefundsServicer(refunds_pb2_grpc.RefundsServicer):
    """gRPC `clearhouse.payments.v1.Refunds`."""

    def __init__(self, money: MoneyApp) -> None:
        self._app = money.app
        self._refunds = money.refunds

    async def CreateRefund(
        self, request: refunds_pb2.CreateRefundRequest, context: grpc.aio.ServicerContext
    ) -> refunds_pb2.CreateRefundResponse:
        caller = await self._app.caller()
        command = CreateRefund(
            intent_id=request.payment_intent,
            amount=request.amount if request.HasField("amount") else None,
            reason=convert.refund_reason(request.reason),
            metadata=dict(request.metadata),
        )
        return await self._app.idempotent(
            context,
            caller,
            request,
            lambda r: refunds_pb2.CreateRefundResponse(refund=convert.refund(r)),
            lambda ticket: self._refunds.create(caller, command, ticket),
        )

    async def ApproveRefund(
        self, request: refunds_pb2.ApproveRefundRequest, context: grpc.aio.ServicerContext
    ) -> refunds_pb2.ApproveRefundResponse:
        caller = await self._app.caller()
        return await self._app.idempotent(
            context,
            caller,
            request,
            lambda r: refunds_pb2.ApproveRefundResponse(refund=convert.refund(r)),
            lambda ticket: self._refunds.approve(caller, request.id, ticket),
        )

    async def RejectRefund(
        self, request: refunds_pb2.RejectRefundRequest, context: grpc.aio.ServicerContext
    ) -> refunds_pb2.RejectRefundResponse:
        caller = await self._app.caller()
        return await self._app.idempotent(
            context,
            caller,
            request,
            lambda r: refunds_pb2.RejectRefundResponse(refund=convert.refund(r)),
            lambda ticket: self._refunds.reject(caller, request.id, request.reason, ticket),
        )

    async def GetRefund(
        self, request: refunds_pb2.GetRefundRequest, context: grpc.aio.ServicerContext
    ) -> refunds_pb2.GetRefundResponse:
        caller = await self._app.caller()
        return refunds_pb2.GetRefundResponse(
            refund=convert.refund(await self._refunds.get(caller, request.id))
        )

    async def ListRefunds(
        self, request: refunds_pb2.ListRefundsRequest, context: grpc.aio.ServicerContext
    ) -> refunds_pb2.ListRefundsResponse:
        caller = await self._app.caller()
        found, more = await self._refunds.list_page(
            caller,
            limit=request.limit,
            starting_after=request.starting_after,
            intent_id=request.payment_intent,
            status=convert.refund_status(request.status),
        )
        return refunds_pb2.ListRefundsResponse(data=[convert.refund(r) for r in found], has_more=more)


class DisputesServicer(disputes_pb2_grpc.DisputesServicer):
    """gRPC `clearhouse.payments.v1.Disputes`."""

    def __init__(self, money: MoneyApp) -> None:
        self._app = money.app
        self._disputes = money.disputes

    async def CreateDispute(
        self, request: disputes_pb2.CreateDisputeRequest, context: grpc.aio.ServicerContext
    ) -> disputes_pb2.CreateDisputeResponse:
        caller = await self._app.caller()
        amount = request.amount if request.HasField("amount") else None
        return await self._app.idempotent(
            context,
            caller,
            request,
            lambda d: disputes_pb2.CreateDisputeResponse(dispute=convert.dispute(d)),
            lambda ticket: self._disputes.create(
                caller, request.payment_intent, amount, convert.dispute_reason(request.reason), ticket
            ),
        )

    async def SubmitDisputeEvidence(
        self, request: disputes_pb2.SubmitDisputeEvidenceRequest, context: grpc.aio.ServicerContext
    ) -> disputes_pb2.SubmitDisputeEvidenceResponse:
        caller = await self._app.caller()
        return await self._app.idempotent(
            context,
            caller,
            request,
            lambda d: disputes_pb2.SubmitDisputeEvidenceResponse(dispute=convert.dispute(d)),
            lambda ticket: self._disputes.submit_evidence(
                caller, request.id, convert.evidence(request.evidence), ticket
            ),
        )

    async def ResolveDispute(
        self, request: disputes_pb2.ResolveDisputeRequest, context: grpc.aio.ServicerContext
    ) -> disputes_pb2.ResolveDisputeResponse:
        caller = await self._app.caller()
        outcome = request.outcome
        if outcome not in (disputes_pb2.ResolveDisputeRequest.WON, disputes_pb2.ResolveDisputeRequest.LOST):
            raise errors.InvalidArgument(
                "outcome must be WON or LOST",
                reason="INVALID_OUTCOME",
                field_violations=[errors.FieldViolation("outcome", "WON or LOST")],
            )
        won = outcome == disputes_pb2.ResolveDisputeRequest.WON
        return await self._app.idempotent(
            context,
            caller,
            request,
            lambda d: disputes_pb2.ResolveDisputeResponse(dispute=convert.dispute(d)),
            lambda ticket: self._disputes.resolve(caller, request.id, won, ticket),
        )

    async def GetDispute(
        self, request: disputes_pb2.GetDisputeRequest, context: grpc.aio.ServicerContext
    ) -> disputes_pb2.GetDisputeResponse:
        caller = await self._app.caller()
        return disputes_pb2.GetDisputeResponse(
            dispute=convert.dispute(await self._disputes.get(caller, request.id))
        )

    async def ListDisputes(
        self, request: disputes_pb2.ListDisputesRequest, context: grpc.aio.ServicerContext
    ) -> disputes_pb2.ListDisputesResponse:
        caller = await self._app.caller()
        found, more = await self._disputes.list_page(
            caller,
            limit=request.limit,
            starting_after=request.starting_after,
            intent_id=request.payment_intent,
            status=convert.dispute_status(request.status),
        )
        return disputes_pb2.ListDisputesResponse(data=[convert.dispute(d) for d in found], has_more=more)


class ProviderWebhooksServicer(provider_webhooks_pb2_grpc.ProviderWebhooksServicer):
    """gRPC `clearhouse.payments.v1.ProviderWebhooks` (authenticated by the provider's signature)."""

    def __init__(self, money: MoneyApp) -> None:
        self._disputes = money.disputes

    async def ReceiveProviderWebhook(
        self, request: provider_webhooks_pb2.ReceiveProviderWebhookRequest, context: grpc.aio.ServicerContext
    ) -> provider_webhooks_pb2.ReceiveProviderWebhookResponse:
        signature = call_context.current().metadata.get(call_context.PROVIDER_SIGNATURE)
        outcome = await self._disputes.receive_webhook(request.provider, request.body.data, signature)
        return provider_webhooks_pb2.ReceiveProviderWebhookResponse(
            event_id=outcome.event_id, duplicate=outcome.duplicate, result=outcome.result
        )


class WebhookEndpointsServicer(webhook_endpoints_pb2_grpc.WebhookEndpointsServicer):
    """gRPC `clearhouse.payments.v1.WebhookEndpoints`."""

    def __init__(self, money: MoneyApp) -> None:
        self._app = money.app
        self._webhooks = money.webhooks

    async def CreateWebhookEndpoint(
        self, request: _WE.CreateWebhookEndpointRequest, context: grpc.aio.ServicerContext
    ) -> _WE.CreateWebhookEndpointResponse:
        caller = await self._app.caller()
        return await self._app.idempotent(
            context,
            caller,
            request,
            lambda e: _WE.CreateWebhookEndpointResponse(
                webhook_endpoint=convert.endpoint(e, with_secret=True)
            ),
            lambda ticket: self._webhooks.create_endpoint(
                caller, request.url, list(request.enabled_events), request.description, ticket
            ),
            stored=_without_endpoint_secret,
        )

    async def GetWebhookEndpoint(
        self, request: _WE.GetWebhookEndpointRequest, context: grpc.aio.ServicerContext
    ) -> _WE.GetWebhookEndpointResponse:
        caller = await self._app.caller()
        found = await self._webhooks.get_endpoint(caller, request.id)
        return _WE.GetWebhookEndpointResponse(webhook_endpoint=convert.endpoint(found))

    async def ListWebhookEndpoints(
        self, request: _WE.ListWebhookEndpointsRequest, context: grpc.aio.ServicerContext
    ) -> _WE.ListWebhookEndpointsResponse:
        caller = await self._app.caller()
        found, more = await self._webhooks.list_endpoints(caller, request.limit, request.starting_after)
        return _WE.ListWebhookEndpointsResponse(data=[convert.endpoint(e) for e in found], has_more=more)

    async def DeleteWebhookEndpoint(
        self, request: _WE.DeleteWebhookEndpointRequest, context: grpc.aio.ServicerContext
    ) -> _WE.DeleteWebhookEndpointResponse:
        caller = await self._app.caller()
        return await self._app.idempotent(
            context,
            caller,
            request,
            lambda endpoint_id: _WE.DeleteWebhookEndpointResponse(id=endpoint_id, deleted=True),
            lambda ticket: self._webhooks.delete_endpoint(caller, request.id, ticket),
        )

    async def ListWebhookDeliveries(
        self, request: _WE.ListWebhookDeliveriesRequest, context: grpc.aio.ServicerContext
    ) -> _WE.ListWebhookDeliveriesResponse:
        caller = await self._app.caller()
        found, more = await self._webhooks.list_deliveries(
            caller,
            request.endpoint_id,
            request.limit,
            request.starting_after,
            convert.delivery_status(request.status),
        )
        return _WE.ListWebhookDeliveriesResponse(data=[convert.delivery(d) for d in found], has_more=more)

    async def RedeliverWebhook(
        self, request: _WE.RedeliverWebhookRequest, context: grpc.aio.ServicerContext
    ) -> _WE.RedeliverWebhookResponse:
        caller = await self._app.caller()
        return await self._app.idempotent(
            context,
            caller,
            request,
            lambda d: _WE.RedeliverWebhookResponse(delivery=convert.delivery(d)),
            lambda ticket: self._webhooks.redeliver(caller, request.endpoint_id, request.event_id, ticket),
        )


class SettlementsServicer(settlements_pb2_grpc.SettlementsServicer):
    """gRPC `clearhouse.payments.v1.Settlements`."""

    def __init__(self, money: MoneyApp) -> None:
        self._app = money.app
        self._settlements = money.settlements

    async def RunSettlement(
        self, request: settlements_pb2.RunSettlementRequest, context: grpc.aio.ServicerContext
    ) -> settlements_pb2.RunSettlementResponse:
        caller = await self._app.caller()
        return await self._app.idempotent(
            context,
            caller,
            request,
            lambda found: settlements_pb2.RunSettlementResponse(
                settlements=[convert.settlement(s) for s in found]
            ),
            lambda ticket: self._settlements.run(caller, request.as_of, request.merchant_id, ticket),
        )

    async def GetSettlement(
        self, request: settlements_pb2.GetSettlementRequest, context: grpc.aio.ServicerContext
    ) -> settlements_pb2.GetSettlementResponse:
        caller = await self._app.caller()
        found = await self._settlements.get(caller, request.id)
        return settlements_pb2.GetSettlementResponse(settlement=convert.settlement(found))

    async def ListSettlements(
        self, request: settlements_pb2.ListSettlementsRequest, context: grpc.aio.ServicerContext
    ) -> settlements_pb2.ListSettlementsResponse:
        caller = await self._app.caller()
        found, more = await self._settlements.list_page(caller, request.limit, request.starting_after)
        return settlements_pb2.ListSettlementsResponse(
            data=[convert.settlement(s) for s in found], has_more=more
        )


class PayoutsServicer(payouts_pb2_grpc.PayoutsServicer):
    """gRPC `clearhouse.payments.v1.Payouts`."""

    def __init__(self, money: MoneyApp) -> None:
        self._app = money.app
        self._payouts = money.payouts

    async def CreatePayout(
        self, request: payouts_pb2.CreatePayoutRequest, context: grpc.aio.ServicerContext
    ) -> payouts_pb2.CreatePayoutResponse:
        caller = await self._app.caller()
        return await self._app.idempotent(
            context,
            caller,
            request,
            lambda p: payouts_pb2.CreatePayoutResponse(payout=convert.payout(p)),
            lambda ticket: self._payouts.create(
                caller,
                request.amount,
                request.currency,
                bank_account=request.bank_account,
                description=request.description,
                ticket=ticket,
            ),
        )

    async def GetPayout(
        self, request: payouts_pb2.GetPayoutRequest, context: grpc.aio.ServicerContext
    ) -> payouts_pb2.GetPayoutResponse:
        caller = await self._app.caller()
        return payouts_pb2.GetPayoutResponse(
            payout=convert.payout(await self._payouts.get(caller, request.id))
        )

    async def ListPayouts(
        self, request: payouts_pb2.ListPayoutsRequest, context: grpc.aio.ServicerContext
    ) -> payouts_pb2.ListPayoutsResponse:
        caller = await self._app.caller()
        found, more = await self._payouts.list_page(
            caller, request.limit, request.starting_after, convert.payout_status(request.status)
        )
        return payouts_pb2.ListPayoutsResponse(data=[convert.payout(p) for p in found], has_more=more)


class ReconciliationsServicer(reconciliation_pb2_grpc.ReconciliationsServicer):
    """gRPC `clearhouse.payments.v1.Reconciliations`."""

    def __init__(self, money: MoneyApp) -> None:
        self._app = money.app
        self._reconciliations = money.reconciliations

    async def CreateReconciliation(
        self, request: reconciliation_pb2.CreateReconciliationRequest, context: grpc.aio.ServicerContext
    ) -> reconciliation_pb2.CreateReconciliationResponse:
        caller = await self._app.caller()
        return await self._app.idempotent(
            context,
            caller,
            request,
            lambda r: reconciliation_pb2.CreateReconciliationResponse(
                reconciliation=convert.reconciliation(r)
            ),
            lambda ticket: self._reconciliations.create(caller, request.provider, request.date, ticket),
        )

    async def GetReconciliation(
        self, request: reconciliation_pb2.GetReconciliationRequest, context: grpc.aio.ServicerContext
    ) -> reconciliation_pb2.GetReconciliationResponse:
        caller = await self._app.caller()
        found = await self._reconciliations.get(caller, request.id)
        return reconciliation_pb2.GetReconciliationResponse(reconciliation=convert.reconciliation(found))

    async def ListReconciliations(
        self, request: reconciliation_pb2.ListReconciliationsRequest, context: grpc.aio.ServicerContext
    ) -> reconciliation_pb2.ListReconciliationsResponse:
        caller = await self._app.caller()
        found, more = await self._reconciliations.list_page(caller, request.limit, request.starting_after)
        return reconciliation_pb2.ListReconciliationsResponse(
            data=[convert.reconciliation(r) for r in found], has_more=more
        )


def registrations(money: MoneyApp) -> list[Registration]:
    """The part-2 servicers with their registration functions."""
    return [
        (refunds_pb2_grpc.add_RefundsServicer_to_server, RefundsServicer(money)),
        (disputes_pb2_grpc.add_DisputesServicer_to_server, DisputesServicer(money)),
        (provider_webhooks_pb2_grpc.add_ProviderWebhooksServicer_to_server, ProviderWebhooksServicer(money)),
        (webhook_endpoints_pb2_grpc.add_WebhookEndpointsServicer_to_server, WebhookEndpointsServicer(money)),
        (settlements_pb2_grpc.add_SettlementsServicer_to_server, SettlementsServicer(money)),
        (payouts_pb2_grpc.add_PayoutsServicer_to_server, PayoutsServicer(money)),
        (reconciliation_pb2_grpc.add_ReconciliationsServicer_to_server, ReconciliationsServicer(money)),
    ]


__all__ = ["Message", "MoneyApp", "registrations"]
