"""Provider calls of part 2: refunds and daily settlement reports (`clearhouse.provider.v1`)."""

from __future__ import annotations

import dataclasses

import grpc
from clearhouse.provider.v1 import provider_pb2, provider_pb2_grpc

from payments_svc.adapters.provider_client import ProviderOutcomeUnknown, ProviderRefused, _classify


@dataclasses.dataclass(frozen=True, slots=True)
class ProviderRefund:
    """The provider's record of a refund."""

    id: str
    transaction_id: str
    reference: str
    amount: int


@dataclasses.dataclass(frozen=True, slots=True)
class ReportRow:
    """One row of a provider's settlement report (refund amounts negative)."""

    reference: str
    merchant_reference: str
    type: str
    amount: int
    currency: str
    fee: int
    merchant_id: str


class ProviderMoneyClient:
    """Refund and GenerateSettlementReport, each with a deadline."""

    def __init__(self, channel: grpc.aio.Channel, timeout_seconds: float) -> None:
        self._stub = provider_pb2_grpc.ProviderStub(channel)
        self._timeout_seconds = timeout_seconds

    async def refund(
        self, *, provider: str, transaction_id: str, amount: int, reference: str
    ) -> ProviderRefund:
        """Refund (idempotent by reference); ProviderRefused or ProviderOutcomeUnknown on failure."""
        request = provider_pb2.RefundRequest(
            provider=provider, transaction_id=transaction_id, amount=amount, reference=reference
        )
        try:
            response = await self._stub.Refund(request, timeout=self._timeout_seconds)
        except grpc.aio.AioRpcError as error:
            raise _classify(error) from None
        found = response.refund
        return ProviderRefund(found.id, found.transaction_id, found.reference, found.amount)

    async def settlement_report(self, provider: str, date: str) -> list[ReportRow]:
        """The provider's report of `date` ("YYYY-MM-DD")."""
        request = provider_pb2.GenerateSettlementReportRequest(provider=provider, date=date)
        try:
            response = await self._stub.GenerateSettlementReport(request, timeout=self._timeout_seconds)
        except grpc.aio.AioRpcError as error:
            raise _classify(error) from None
        return [
            ReportRow(r.reference, r.merchant_reference, r.type, r.amount, r.currency, r.fee, r.merchant_id)
            for r in response.rows
        ]


__all__ = ["ProviderMoneyClient", "ProviderOutcomeUnknown", "ProviderRefund", "ProviderRefused", "ReportRow"]
