"""Client of the provider simulator (`clearhouse.provider.v1.Provider`).

Outcomes are sorted into three kinds, because they decide what is safe next:
- an answer (a Transaction, approved or declined): the provider decided;
- a definitive failure (`ProviderRefused`, e.g. processing_error): nothing happened there;
- an unknown outcome (`ProviderOutcomeUnknown`: a timeout, a dropped connection): the provider
  may or may not have acted, so only a lookup by reference may decide what comes next.
"""

from __future__ import annotations

import dataclasses

import grpc
from clearhouse.provider.v1 import provider_pb2, provider_pb2_grpc

from chassis import errors
from payments_svc.domain.cards import Card

# gRPC codes after which the provider certainly did nothing.
_DEFINITIVE = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
    }
)
PROCESSING_ERROR = "PROCESSING_ERROR"


class ProviderRefused(Exception):
    """The provider answered with an error: nothing was done there."""

    def __init__(self, code: grpc.StatusCode, reason: str, message: str) -> None:
        super().__init__(f"{code.name} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message

    @property
    def is_processing_error(self) -> bool:
        """The documented `processing_error` (counts as a breaker failure)."""
        return self.reason == PROCESSING_ERROR


@dataclasses.dataclass(frozen=True, slots=True)
class FailureSettings:
    """Failure injection of one simulated provider (rates are probabilities in [0, 1])."""

    decline_rate: float = 0.0
    error_rate: float = 0.0
    timeout_rate: float = 0.0
    latency_ms_min: int = 0
    latency_ms_max: int = 0
    duplicate_webhook_rate: float = 0.0
    settlement_mismatch_rate: float = 0.0
    seed: int = 0


class ProviderOutcomeUnknown(Exception):
    """No answer in time (or the connection broke): the provider may have acted."""


@dataclasses.dataclass(frozen=True, slots=True)
class ProviderTransaction:
    """The provider's record of an authorization."""

    id: str
    provider: str
    reference: str
    status: str
    amount: int
    amount_captured: int
    decline_code: str
    message: str


def _transaction(message: provider_pb2.Transaction) -> ProviderTransaction:
    return ProviderTransaction(
        id=message.id,
        provider=message.provider,
        reference=message.reference,
        status=provider_pb2.Transaction.Status.Name(message.status),
        amount=message.amount,
        amount_captured=message.amount_captured,
        decline_code=message.decline_code,
        message=message.message,
    )


def _classify(error: grpc.aio.AioRpcError) -> Exception:
    remote = errors.from_rpc_error(error)
    if remote.code in _DEFINITIVE or remote.reason == PROCESSING_ERROR:
        return ProviderRefused(remote.code, remote.reason or remote.code.name, remote.message)
    return ProviderOutcomeUnknown(f"{remote.code.name}: {remote.reason or ''}")


class ProviderClient:
    """Provider calls, each with a deadline."""

    def __init__(
        self, channel: grpc.aio.Channel, timeout_seconds: float, admin_timeout_seconds: float
    ) -> None:
        self._stub = provider_pb2_grpc.ProviderStub(channel)
        self._timeout_seconds = timeout_seconds
        self._admin_timeout_seconds = admin_timeout_seconds

    async def authorize(
        self, *, provider: str, reference: str, amount: int, currency: str, card: Card, merchant_id: str
    ) -> ProviderTransaction:
        """Authorize (idempotent by provider and reference)."""
        request = provider_pb2.AuthorizeRequest(
            provider=provider,
            reference=reference,
            amount=amount,
            currency=currency,
            merchant_id=merchant_id,
            card=provider_pb2.CardData(
                number=card.number,
                exp_month=card.exp_month,
                exp_year=card.exp_year,
                cvc=card.cvc,
                cardholder_name=card.cardholder_name,
            ),
        )
        try:
            response = await self._stub.Authorize(request, timeout=self._timeout_seconds)
        except grpc.aio.AioRpcError as error:
            raise _classify(error) from None
        return _transaction(response.transaction)

    async def find(
        self, *, provider: str, reference: str = "", transaction_id: str = ""
    ) -> ProviderTransaction | None:
        """The transaction with this reference (or id), or None if the provider never recorded it."""
        request = provider_pb2.GetTransactionRequest(
            provider=provider, reference=reference, transaction_id=transaction_id
        )
        try:
            response = await self._stub.GetTransaction(request, timeout=self._timeout_seconds)
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.NOT_FOUND:
                return None
            raise _classify(error) from None
        return _transaction(response.transaction)

    async def capture(
        self, *, provider: str, transaction_id: str, amount: int, reference: str
    ) -> ProviderTransaction:
        """Capture (idempotent by reference)."""
        request = provider_pb2.CaptureRequest(
            provider=provider, transaction_id=transaction_id, amount=amount, reference=reference
        )
        try:
            response = await self._stub.Capture(request, timeout=self._timeout_seconds)
        except grpc.aio.AioRpcError as error:
            raise _classify(error) from None
        return _transaction(response.transaction)

    async def void(self, *, provider: str, transaction_id: str) -> ProviderTransaction:
        """Void an uncaptured authorization."""
        request = provider_pb2.VoidRequest(provider=provider, transaction_id=transaction_id)
        try:
            response = await self._stub.Void(request, timeout=self._timeout_seconds)
        except grpc.aio.AioRpcError as error:
            raise _classify(error) from None
        return _transaction(response.transaction)

    async def configure_failures(self, provider: str, settings: FailureSettings) -> FailureSettings:
        """Set failure injection (admin); returns the configuration in force."""
        config = provider_pb2.FailureConfig(**dataclasses.asdict(settings))
        request = provider_pb2.ConfigureFailuresRequest(provider=provider, config=config)
        try:
            response = await self._stub.ConfigureFailures(request, timeout=self._admin_timeout_seconds)
        except grpc.aio.AioRpcError as error:
            raise errors.from_rpc_error(error).to_error() from None
        found = response.config
        return FailureSettings(
            decline_rate=found.decline_rate,
            error_rate=found.error_rate,
            timeout_rate=found.timeout_rate,
            latency_ms_min=found.latency_ms_min,
            latency_ms_max=found.latency_ms_max,
            duplicate_webhook_rate=found.duplicate_webhook_rate,
            settlement_mismatch_rate=found.settlement_mismatch_rate,
            seed=found.seed,
        )
