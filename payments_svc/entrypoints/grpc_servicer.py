# ruff: noqa: N802 - RPC method names are fixed by the generated servicer base classes.
"""gRPC entry points of the payments service: thin translation between protobuf and handlers.

Each RPC: authenticate from the `authorization` metadata → request to command → handler →
result to response. Mutating RPCs go through `App.idempotent`, which honours the
`idempotency-key` metadata and marks replays with `idempotent-replayed: true`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from clearhouse.payments.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    balance_pb2,
    balance_pb2_grpc,
    events_pb2,
    events_pb2_grpc,
    merchants_pb2,
    merchants_pb2_grpc,
    payment_intents_pb2,
    payment_intents_pb2_grpc,
    risk_pb2,
    risk_pb2_grpc,
    tokens_pb2,
    tokens_pb2_grpc,
)
from google.protobuf.message import Message

from chassis import context as call_context
from chassis import errors
from payments_svc.adapters.circuit_board import CircuitBoard
from payments_svc.adapters.provider_client import FailureSettings, ProviderClient
from payments_svc.adapters.vault_client import VaultClient
from payments_svc.domain.payments import PROVIDERS, PaymentIntent
from payments_svc.entrypoints import convert
from payments_svc.service_layer.auth import Authenticator, Caller
from payments_svc.service_layer.cards import CardService
from payments_svc.service_layer.errors import translated
from payments_svc.service_layer.idempotency import Idempotency, Replay, Ticket, lock_seconds
from payments_svc.service_layer.jobs import Jobs
from payments_svc.service_layer.merchants import (
    CreatedKey,
    CreatedMerchant,
    CreateMerchant,
    MerchantService,
    UpdateMerchant,
)
from payments_svc.service_layer.payments import ConfirmIntent, CreateIntent, ListIntents, PaymentService
from payments_svc.service_layer.reads import ReadService

R = TypeVar("R")
M = TypeVar("M", bound=Message)
_PI = payment_intents_pb2
_SERVICE = "/clearhouse.payments.v1."


@dataclasses.dataclass
class App:
    """Everything the servicers call, wired by bootstrap."""

    authenticator: Authenticator
    idempotency: Idempotency
    merchants: MerchantService
    payments: PaymentService
    cards: CardService
    reads: ReadService
    jobs: Jobs
    board: CircuitBoard
    provider: ProviderClient
    vault: VaultClient
    default_deadline_seconds: float

    async def caller(self) -> Caller:
        """The authenticated caller of the current RPC."""
        return await self.authenticator.authenticate(call_context.current().bearer_token)

    def lease_seconds(self, context: grpc.aio.ServicerContext) -> float:
        """How long this request may own a key or an operation: its deadline plus a margin."""
        return lock_seconds(context.time_remaining(), self.default_deadline_seconds)

    async def idempotent(
        self,
        context: grpc.aio.ServicerContext,
        caller: Caller,
        request: Message,
        respond: Callable[[R], M],
        run: Callable[[Ticket | None], Awaitable[R]],
        *,
        stored: Callable[[M], M] | None = None,
    ) -> M:
        """Run a mutating RPC under its idempotency key (if the caller sent one).

        `respond` turns the handler's result into the response; `stored` strips what must not be
        kept (a new API key's secret) from the copy stored for replays.
        """
        key = call_context.current().idempotency_key
        if key is None:
            with translated():
                return respond(await run(None))
        method = call_context.current().method

        def encode(result: Any) -> bytes:
            message = respond(result)
            return (stored(message) if stored else message).SerializeToString()

        outcome = await self.idempotency.begin(
            scope=caller.scope,
            key=key,
            method=method,
            request=request.SerializeToString(deterministic=True),
            lock_for_seconds=self.lease_seconds(context),
            encode=encode,
        )
        if isinstance(outcome, Replay):
            await context.send_initial_metadata(((call_context.IDEMPOTENT_REPLAYED, "true"),))
            if outcome.error is not None:
                raise outcome.error
            return _replayed(method, outcome.response or b"")  # type: ignore[return-value]
        ticket = outcome

        async def execute() -> M:
            with translated():
                return respond(await run(ticket))

        return await self.idempotency.guard(ticket, execute)


# Response classes by method, for replays (the stored bytes are the serialized response).
_RESPONSES: dict[str, type[Message]] = {
    f"{_SERVICE}Merchants/CreateMerchant": merchants_pb2.CreateMerchantResponse,
    f"{_SERVICE}Merchants/UpdateMerchant": merchants_pb2.UpdateMerchantResponse,
    f"{_SERVICE}Merchants/CreateApiKey": merchants_pb2.CreateApiKeyResponse,
    f"{_SERVICE}Merchants/RevokeApiKey": merchants_pb2.RevokeApiKeyResponse,
    f"{_SERVICE}PaymentIntents/CreatePaymentIntent": _PI.CreatePaymentIntentResponse,
    f"{_SERVICE}PaymentIntents/ConfirmPaymentIntent": _PI.ConfirmPaymentIntentResponse,
    f"{_SERVICE}PaymentIntents/CapturePaymentIntent": _PI.CapturePaymentIntentResponse,
    f"{_SERVICE}PaymentIntents/CancelPaymentIntent": _PI.CancelPaymentIntentResponse,
    f"{_SERVICE}Tokens/CreateToken": tokens_pb2.CreateTokenResponse,
}


def register_responses(responses: dict[str, type[Message]]) -> None:
    """Add response classes of more mutating RPCs (part 2), so their replays decode."""
    _RESPONSES.update(responses)


def _replayed(method: str, data: bytes) -> Message:
    return _RESPONSES[method].FromString(data)


def encode_intent_response(method: str, intent: PaymentIntent) -> bytes | None:
    """The stored response of a payment-intent RPC for `intent` (the idempotency completer)."""
    response_class = _RESPONSES.get(method)
    if response_class is None or not method.startswith(f"{_SERVICE}PaymentIntents/"):
        return None
    return response_class(payment_intent=convert.payment_intent(intent)).SerializeToString()  # type: ignore[call-arg]


def _without_secret(message: M) -> M:
    copy = type(message)()
    copy.CopyFrom(message)
    if copy.HasField("api_key"):  # type: ignore[attr-defined]
        copy.api_key.secret = ""  # type: ignore[attr-defined]
    return copy


class MerchantsServicer(merchants_pb2_grpc.MerchantsServicer):
    """gRPC `clearhouse.payments.v1.Merchants`."""

    def __init__(self, app: App) -> None:
        self._app = app

    async def CreateMerchant(
        self, request: merchants_pb2.CreateMerchantRequest, context: grpc.aio.ServicerContext
    ) -> merchants_pb2.CreateMerchantResponse:
        caller = await self._app.caller()
        command = CreateMerchant(
            name=request.name,
            country=request.country,
            default_currency=request.default_currency,
            pricing=convert.pricing(request, "pricing"),
            risk_settings=convert.risk_settings(request, "risk_settings"),
            payout_bank_account=request.payout_bank_account,
            principal=request.principal,
        )

        def respond(result: CreatedMerchant) -> merchants_pb2.CreateMerchantResponse:
            return merchants_pb2.CreateMerchantResponse(
                merchant=convert.merchant(result.merchant),
                api_key=convert.api_key(result.created_key.api_key, result.created_key.secret),
            )

        return await self._app.idempotent(
            context,
            caller,
            request,
            respond,
            lambda ticket: self._app.merchants.create_merchant(caller, command, ticket),
            stored=_without_secret,
        )

    async def GetMerchant(
        self, request: merchants_pb2.GetMerchantRequest, context: grpc.aio.ServicerContext
    ) -> merchants_pb2.GetMerchantResponse:
        caller = await self._app.caller()
        found = await self._app.merchants.get_merchant(caller, request.merchant_id)
        return merchants_pb2.GetMerchantResponse(merchant=convert.merchant(found))

    async def UpdateMerchant(
        self, request: merchants_pb2.UpdateMerchantRequest, context: grpc.aio.ServicerContext
    ) -> merchants_pb2.UpdateMerchantResponse:
        caller = await self._app.caller()
        command = UpdateMerchant(
            merchant_id=request.merchant_id,
            pricing=convert.pricing(request, "pricing"),
            risk_settings=convert.risk_settings(request, "risk_settings"),
            payout_bank_account=request.payout_bank_account or None,
        )
        return await self._app.idempotent(
            context,
            caller,
            request,
            lambda m: merchants_pb2.UpdateMerchantResponse(merchant=convert.merchant(m)),
            lambda ticket: self._app.merchants.update_merchant(caller, command, ticket),
        )

    async def CreateApiKey(
        self, request: merchants_pb2.CreateApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> merchants_pb2.CreateApiKeyResponse:
        caller = await self._app.caller()

        def respond(result: CreatedKey) -> merchants_pb2.CreateApiKeyResponse:
            return merchants_pb2.CreateApiKeyResponse(api_key=convert.api_key(result.api_key, result.secret))

        return await self._app.idempotent(
            context,
            caller,
            request,
            respond,
            lambda ticket: self._app.merchants.create_api_key(
                caller, request.merchant_id, request.principal, convert.role(request.role), ticket
            ),
            stored=_without_secret,
        )

    async def ListApiKeys(
        self, request: merchants_pb2.ListApiKeysRequest, context: grpc.aio.ServicerContext
    ) -> merchants_pb2.ListApiKeysResponse:
        caller = await self._app.caller()
        keys = await self._app.merchants.list_api_keys(caller, request.merchant_id)
        return merchants_pb2.ListApiKeysResponse(data=[convert.api_key(k) for k in keys], has_more=False)

    async def RevokeApiKey(
        self, request: merchants_pb2.RevokeApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> merchants_pb2.RevokeApiKeyResponse:
        caller = await self._app.caller()
        return await self._app.idempotent(
            context,
            caller,
            request,
            lambda key: merchants_pb2.RevokeApiKeyResponse(api_key=convert.api_key(key)),
            lambda ticket: self._app.merchants.revoke_api_key(
                caller, request.merchant_id, request.api_key_id, ticket
            ),
        )


class PaymentIntentsServicer(payment_intents_pb2_grpc.PaymentIntentsServicer):
    """gRPC `clearhouse.payments.v1.PaymentIntents`."""

    def __init__(self, app: App) -> None:
        self._app = app

    async def CreatePaymentIntent(
        self, request: _PI.CreatePaymentIntentRequest, context: grpc.aio.ServicerContext
    ) -> _PI.CreatePaymentIntentResponse:
        caller = await self._app.caller()
        command = CreateIntent(
            amount=request.amount,
            currency=request.currency,
            capture_method=convert.capture_method(request.capture_method),
            description=request.description,
            metadata=dict(request.metadata),
            preferred_provider=request.preferred_provider,
        )
        return await self._app.idempotent(
            context,
            caller,
            request,
            lambda i: _PI.CreatePaymentIntentResponse(payment_intent=convert.payment_intent(i)),
            lambda ticket: self._app.payments.create(caller, command, ticket),
        )

    async def GetPaymentIntent(
        self, request: _PI.GetPaymentIntentRequest, context: grpc.aio.ServicerContext
    ) -> _PI.GetPaymentIntentResponse:
        caller = await self._app.caller()
        intent = await self._app.payments.get(caller, request.id)
        return _PI.GetPaymentIntentResponse(payment_intent=convert.payment_intent(intent))

    async def ListPaymentIntents(
        self, request: _PI.ListPaymentIntentsRequest, context: grpc.aio.ServicerContext
    ) -> _PI.ListPaymentIntentsResponse:
        caller = await self._app.caller()
        query = ListIntents(
            limit=request.limit,
            starting_after=request.starting_after,
            status=convert.status(request.status),
            created_after=convert.from_timestamp(request, "created_after"),
            created_before=convert.from_timestamp(request, "created_before"),
        )
        intents, has_more = await self._app.payments.list_page(caller, query)
        return _PI.ListPaymentIntentsResponse(
            data=[convert.payment_intent(i) for i in intents], has_more=has_more
        )

    async def ConfirmPaymentIntent(
        self, request: _PI.ConfirmPaymentIntentRequest, context: grpc.aio.ServicerContext
    ) -> _PI.ConfirmPaymentIntentResponse:
        caller = await self._app.caller()
        method = request.payment_method.WhichOneof("method")
        command = ConfirmIntent(
            intent_id=request.id,
            card=convert.card(request.payment_method.card) if method == "card" else None,
            token=request.payment_method.token if method == "token" else "",
            # Only the customer's address as the merchant states it. The HTTP client of the API is
            # the merchant's server (x-forwarded-for names it, not the customer): counting that
            # address would block a busy merchant's whole traffic under the IP velocity rule.
            ip_address=request.ip_address,
            billing_country=request.billing_country,
            capture_method=convert.capture_method(request.capture_method),
        )
        lease = self._app.lease_seconds(context)
        return await self._app.idempotent(
            context,
            caller,
            request,
            lambda i: _PI.ConfirmPaymentIntentResponse(payment_intent=convert.payment_intent(i)),
            lambda ticket: self._app.payments.confirm(caller, command, ticket, lease),
        )

    async def CapturePaymentIntent(
        self, request: _PI.CapturePaymentIntentRequest, context: grpc.aio.ServicerContext
    ) -> _PI.CapturePaymentIntentResponse:
        caller = await self._app.caller()
        amount = request.amount_to_capture if request.HasField("amount_to_capture") else None
        lease = self._app.lease_seconds(context)
        return await self._app.idempotent(
            context,
            caller,
            request,
            lambda i: _PI.CapturePaymentIntentResponse(payment_intent=convert.payment_intent(i)),
            lambda ticket: self._app.payments.capture(caller, request.id, amount, ticket, lease),
        )

    async def CancelPaymentIntent(
        self, request: _PI.CancelPaymentIntentRequest, context: grpc.aio.ServicerContext
    ) -> _PI.CancelPaymentIntentResponse:
        caller = await self._app.caller()
        lease = self._app.lease_seconds(context)
        return await self._app.idempotent(
            context,
            caller,
            request,
            lambda i: _PI.CancelPaymentIntentResponse(payment_intent=convert.payment_intent(i)),
            lambda ticket: self._app.payments.cancel(
                caller, request.id, request.cancellation_reason, ticket, lease
            ),
        )


class TokensServicer(tokens_pb2_grpc.TokensServicer):
    """gRPC `clearhouse.payments.v1.Tokens`."""

    def __init__(self, app: App) -> None:
        self._app = app

    async def CreateToken(
        self, request: tokens_pb2.CreateTokenRequest, context: grpc.aio.ServicerContext
    ) -> tokens_pb2.CreateTokenResponse:
        caller = await self._app.caller()
        card = convert.card(request.card) if request.HasField("card") else None
        return await self._app.idempotent(
            context,
            caller,
            request,
            lambda t: tokens_pb2.CreateTokenResponse(token=convert.token(t)),
            lambda ticket: self._app.cards.create_token(caller, card, ticket),
        )

    async def GetToken(
        self, request: tokens_pb2.GetTokenRequest, context: grpc.aio.ServicerContext
    ) -> tokens_pb2.GetTokenResponse:
        caller = await self._app.caller()
        found = await self._app.cards.get_token(caller, request.id)
        return tokens_pb2.GetTokenResponse(token=convert.token(found))


class EventsServicer(events_pb2_grpc.EventsServicer):
    """gRPC `clearhouse.payments.v1.Events`."""

    def __init__(self, app: App) -> None:
        self._app = app

    async def GetEvent(
        self, request: events_pb2.GetEventRequest, context: grpc.aio.ServicerContext
    ) -> events_pb2.GetEventResponse:
        caller = await self._app.caller()
        return events_pb2.GetEventResponse(
            event=convert.event(await self._app.reads.event(caller, request.id))
        )

    async def ListEvents(
        self, request: events_pb2.ListEventsRequest, context: grpc.aio.ServicerContext
    ) -> events_pb2.ListEventsResponse:
        caller = await self._app.caller()
        found, has_more = await self._app.reads.events(
            caller,
            limit=request.limit,
            starting_after=request.starting_after,
            type_=request.type,
            object_id=request.object_id,
        )
        return events_pb2.ListEventsResponse(data=[convert.event(e) for e in found], has_more=has_more)


class BalancesServicer(balance_pb2_grpc.BalancesServicer):
    """gRPC `clearhouse.payments.v1.Balances`."""

    def __init__(self, app: App) -> None:
        self._app = app

    async def GetBalance(
        self, request: balance_pb2.GetBalanceRequest, context: grpc.aio.ServicerContext
    ) -> balance_pb2.GetBalanceResponse:
        caller = await self._app.caller()
        return convert.balance(await self._app.reads.balance(caller))

    async def ListBalanceTransactions(
        self, request: balance_pb2.ListBalanceTransactionsRequest, context: grpc.aio.ServicerContext
    ) -> balance_pb2.ListBalanceTransactionsResponse:
        caller = await self._app.caller()
        lines, has_more = await self._app.reads.balance_transactions(
            caller,
            limit=request.limit,
            starting_after=request.starting_after,
            currency=request.currency,
            source=request.source,
        )
        return balance_pb2.ListBalanceTransactionsResponse(
            data=[convert.balance_transaction(line) for line in lines], has_more=has_more
        )


class RiskServicer(risk_pb2_grpc.RiskServicer):
    """gRPC `clearhouse.payments.v1.Risk`."""

    def __init__(self, app: App) -> None:
        self._app = app

    async def AssessRisk(
        self, request: risk_pb2.AssessRiskRequest, context: grpc.aio.ServicerContext
    ) -> risk_pb2.AssessRiskResponse:
        caller = await self._app.caller()
        method = request.payment_method.WhichOneof("method")
        found = await self._app.cards.assess(
            caller,
            amount=request.amount,
            currency=request.currency,
            card=convert.card(request.payment_method.card) if method == "card" else None,
            token=request.payment_method.token if method == "token" else "",
            ip_address=request.ip_address,
            billing_country=request.billing_country,
        )
        return risk_pb2.AssessRiskResponse(assessment=convert.assessment(found))


class AdminServicer(admin_pb2_grpc.AdminServicer):
    """gRPC `clearhouse.payments.v1.Admin` (platform admin key only)."""

    def __init__(self, app: App) -> None:
        self._app = app

    async def _platform(self) -> None:
        caller = await self._app.caller()
        caller.require_platform()

    async def GetProviderHealth(
        self, request: admin_pb2.GetProviderHealthRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.GetProviderHealthResponse:
        await self._platform()
        rows = []
        for provider in PROVIDERS:
            snapshot, state = await self._app.board.snapshot(provider)
            rows.append(convert.circuit_breaker(snapshot, state, self._app.board.config))
        return admin_pb2.GetProviderHealthResponse(providers=rows)

    async def ConfigureProviderFailures(
        self, request: admin_pb2.ConfigureProviderFailuresRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.ConfigureProviderFailuresResponse:
        await self._platform()
        if request.provider not in PROVIDERS:
            raise errors.InvalidArgument(
                "provider must be provider_a or provider_b",
                reason="UNKNOWN_PROVIDER",
                field_violations=[errors.FieldViolation("provider", "provider_a or provider_b")],
            )
        settings = FailureSettings(
            decline_rate=request.decline_rate,
            error_rate=request.error_rate,
            timeout_rate=request.timeout_rate,
            latency_ms_min=request.latency_ms_min,
            latency_ms_max=request.latency_ms_max,
            duplicate_webhook_rate=request.duplicate_webhook_rate,
            settlement_mismatch_rate=request.settlement_mismatch_rate,
            seed=request.seed,
        )
        found = await self._app.provider.configure_failures(request.provider, settings)
        return admin_pb2.ConfigureProviderFailuresResponse(
            config=admin_pb2.ConfigureProviderFailuresRequest(
                provider=request.provider, **dataclasses.asdict(found)
            )
        )

    async def GetKeyRotationStatus(
        self, request: admin_pb2.GetKeyRotationStatusRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.GetKeyRotationStatusResponse:
        await self._platform()
        status = await self._app.vault.key_status()
        return admin_pb2.GetKeyRotationStatusResponse(
            current_version=status.current_version,
            min_decryption_version=status.min_decryption_version,
            versions=[admin_pb2.KeyVersion(version=v.version, records=v.records) for v in status.versions],
        )

    async def RunJob(
        self, request: admin_pb2.RunJobRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.RunJobResponse:
        await self._platform()
        processed = await self._app.jobs.run(request.job)
        return admin_pb2.RunJobResponse(job=request.job, processed=processed)
