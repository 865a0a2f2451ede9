"""Use cases of payment intents: create, read, confirm, capture, cancel, and recovery.

The authorize path (DESIGN.md §3), every step retry-safe with deterministic ids:
resolve or tokenize the card (vault) → risk (the card fingerprint comes from the vault, so the
card is resolved first) → route (breakers) → *claim*: record the operation on the intent (the
recovery point) → provider authorize (the PAN from the request, or revealed by the vault for
tokens and resumptions) → ledger pending transfer (and post + fee for automatic capture) → state
change + outbox event + idempotent response in one local transaction.

Whoever finds an operation whose lease lapsed (a retry, the idempotency completer, the resolver
worker) first asks the provider by reference what happened, then finishes with the same ids.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import secrets
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis import errors, ids
from payments_svc.adapters import repository
from payments_svc.adapters.circuit_board import CircuitBoard
from payments_svc.adapters.ledger_client import LedgerClient, LedgerRefused
from payments_svc.adapters.provider_client import (
    ProviderClient,
    ProviderOutcomeUnknown,
    ProviderRefused,
    ProviderTransaction,
)
from payments_svc.adapters.risk_counters import RiskCounters
from payments_svc.adapters.vault_client import VaultClient
from payments_svc.domain import ledger as chart
from payments_svc.domain import payments as model
from payments_svc.domain import risk, routing
from payments_svc.domain.breaker import State as BreakerState
from payments_svc.domain.cards import Card, TokenInfo
from payments_svc.domain.events import INTENT_EVENT_TYPES, Event
from payments_svc.domain.merchants import Merchant, Permission, validate_country, validate_currency
from payments_svc.domain.payments import (
    CaptureMethod,
    Operation,
    OperationKind,
    PaymentError,
    PaymentIntent,
    PaymentMethodDetails,
    Status,
)
from payments_svc.service_layer.auth import Caller
from payments_svc.service_layer.errors import translated
from payments_svc.service_layer.idempotency import Idempotency, Ticket

log = logging.getLogger("payments.intents")

LIST_LIMIT_DEFAULT = 10
LIST_LIMIT_MAX = 100
# Rows one worker pass takes at most.
JOB_BATCH_MAX = 100
CANCELLATION_REASON_EXPIRED = "authorization_expired"
KNOWN_CURRENCIES_MAX = 100_000


@dataclasses.dataclass(frozen=True, slots=True)
class CreateIntent:
    """Command: a new payment intent."""

    amount: int
    currency: str
    capture_method: CaptureMethod | None = None
    description: str = ""
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)
    preferred_provider: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class ConfirmIntent:
    """Command: authorize with a card or a token (exactly one)."""

    intent_id: str
    card: Card | None = None
    token: str = ""
    ip_address: str = ""
    billing_country: str = ""
    capture_method: CaptureMethod | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ListIntents:
    """Query: one page of intents."""

    limit: int = 0
    starting_after: str = ""
    status: Status | None = None
    created_after: datetime.datetime | None = None
    created_before: datetime.datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class PaymentsConfig:
    """Timings of the payment flows."""

    authorization_window_seconds: int
    # Lease of an operation taken over by a resolver: long enough for every call it makes.
    resolve_lease_seconds: float


def current_trace_id() -> str:
    """W3C trace id of the current span, or "" outside a trace."""
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else ""


def _capture_reference(intent_id: str) -> str:
    return f"{intent_id}:capture"


class PaymentService:
    """Payment intents and their money movements."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        idempotency: Idempotency,
        vault: VaultClient,
        ledger: LedgerClient,
        provider: ProviderClient,
        board: CircuitBoard,
        risk_counters: RiskCounters,
        render_intent: Callable[[PaymentIntent], dict[str, Any]],
        clock: Callable[[], datetime.datetime],
        config: PaymentsConfig,
    ) -> None:
        self._engine = engine
        self._idempotency = idempotency
        self._vault = vault
        self._ledger = ledger
        self._provider = provider
        self._board = board
        self._risk = risk_counters
        self._render = render_intent
        self._clock = clock
        self._config = config
        # (merchant, currency) pairs already recorded in merchant_currencies by this process.
        self._known_currencies: set[tuple[str, str]] = set()

    # Reads -----------------------------------------------------------------------------------

    async def _load(self, merchant_id: str | None, intent_id: str) -> PaymentIntent:
        try:
            ids.parse_id(intent_id, "pi")
        except ids.InvalidId:
            raise errors.NotFound("no such payment intent", reason="PAYMENT_INTENT_NOT_FOUND") from None
        async with self._engine.connect() as connection:
            intent = await repository.get_intent(connection, intent_id, merchant_id)
        if intent is None:
            raise errors.NotFound("no such payment intent", reason="PAYMENT_INTENT_NOT_FOUND")
        return intent

    async def get(self, caller: Caller, intent_id: str) -> PaymentIntent:
        """One intent of the caller's merchant (another merchant's is NOT_FOUND)."""
        merchant = caller.require(Permission.READ)
        return await self._load(merchant.id, intent_id)

    async def list_page(self, caller: Caller, query: ListIntents) -> tuple[list[PaymentIntent], bool]:
        """One page, newest first, and whether more follow."""
        merchant = caller.require(Permission.READ)
        limit = query.limit or LIST_LIMIT_DEFAULT
        if not 1 <= limit <= LIST_LIMIT_MAX:
            raise errors.InvalidArgument(
                "limit must be 1-100",
                reason="INVALID_LIMIT",
                field_violations=[errors.FieldViolation("limit", "1-100")],
            )
        if query.starting_after:
            try:
                ids.parse_id(query.starting_after, "pi")
            except ids.InvalidId:
                raise errors.InvalidArgument(
                    "starting_after must be a payment intent id",
                    reason="INVALID_CURSOR",
                    field_violations=[errors.FieldViolation("starting_after", "a pi_… id")],
                ) from None
        where = repository.IntentFilter(
            merchant_id=merchant.id,
            limit=limit,
            starting_after=query.starting_after or None,
            status=query.status,
            created_after=query.created_after,
            created_before=query.created_before,
        )
        async with self._engine.connect() as connection:
            return await repository.list_intents(connection, where)

    # Create ----------------------------------------------------------------------------------

    async def create(self, caller: Caller, command: CreateIntent, ticket: Ticket | None) -> PaymentIntent:
        """A new intent in CREATED, with its `payment_intent.created` event."""
        merchant = caller.require(Permission.TRANSACT)
        with translated():
            amount = model.validate_amount(command.amount)
            currency = validate_currency(command.currency)
            description = model.validate_description(command.description)
            metadata = model.validate_metadata(command.metadata)
            preferred = model.validate_provider(command.preferred_provider)
        now = self._clock()
        intent = PaymentIntent(
            id=ids.new_id("pi"),
            merchant_id=merchant.id,
            status=Status.CREATED,
            amount=amount,
            currency=currency,
            capture_method=command.capture_method or CaptureMethod.AUTOMATIC,
            created_at=now,
            updated_at=now,
            description=description,
            metadata=metadata,
            preferred_provider=preferred,
        )
        async with self._engine.begin() as connection:
            await repository.insert_intent(connection, intent)
            await repository.insert_events(connection, [self._event(intent, Status.CREATED)])
            await self._idempotency.complete(connection, ticket, intent)
        return intent

    # Confirm ---------------------------------------------------------------------------------

    async def confirm(
        self, caller: Caller, command: ConfirmIntent, ticket: Ticket | None, lease_seconds: float
    ) -> PaymentIntent:
        """Authorize (and with automatic capture, capture). A decline is a result, not an error."""
        merchant = caller.require(Permission.TRANSACT)
        if (command.card is None) == (not command.token):
            raise errors.InvalidArgument(
                "payment_method needs exactly one of card or token",
                reason="PAYMENT_METHOD_REQUIRED",
                field_violations=[errors.FieldViolation("payment_method", "set card or token")],
            )
        if command.billing_country:
            with translated():
                validate_country(command.billing_country, "billing_country")
        intent = await self._load(merchant.id, command.intent_id)
        intent = await self._settle_in_flight(intent, merchant)
        if _is_resumption(ticket, intent):
            return await self._complete_with(ticket, intent)
        with translated():
            model.check_confirmable(intent)
        token = await self._resolve_card(merchant, caller.principal, command)
        attempt = intent.attempt + 1
        attempt_id = f"{intent.id}:{attempt}"
        counts = await self._risk.record_attempt(
            fingerprint=token.fingerprint, ip_address=command.ip_address, attempt_id=attempt_id
        )
        assessment = risk.assess(
            risk.Signals(
                amount=intent.amount,
                card_attempts=counts.card_attempts,
                ip_attempts=counts.ip_attempts,
                card_declines=counts.card_declines,
                card_country=token.country,
                billing_country=command.billing_country,
            ),
            merchant.risk_settings,
        )
        capture_method = command.capture_method or intent.capture_method
        base = dataclasses.replace(
            intent,
            attempt=attempt,
            capture_method=capture_method,
            payment_method=_details(token),
            risk_score=assessment.score,
        )
        if assessment.decision is risk.Decision.BLOCK:
            return await self._decline_unclaimed(
                intent,
                base=base,
                error=model.platform_error("fraud_suspected"),
                ticket=ticket,
                fingerprint=token.fingerprint,
                attempt_id=attempt_id,
            )
        route = await self._route(
            intent.preferred_provider, token.country or command.billing_country, intent.amount
        )
        if route is None:
            return await self._decline_unclaimed(
                intent,
                base=base,
                error=model.platform_error("provider_unavailable"),
                ticket=ticket,
                fingerprint="",
                attempt_id=attempt_id,
            )
        provider, seen = route
        now = self._clock()
        capture = capture_method is CaptureMethod.AUTOMATIC
        operation = Operation(
            kind=OperationKind.AUTHORIZE,
            claim_id=_claim_id(),
            started_at=now,
            lease_until=now + datetime.timedelta(seconds=lease_seconds),
            amount=intent.amount,
            capture=capture,
            token=token.token,
            provider=provider,
            reference=model.provider_reference(intent.id, attempt),
            fee=merchant.pricing.fee(intent.amount) if capture else 0,
        )
        claimed = dataclasses.replace(base, provider=provider, operation=operation, updated_at=now)
        await self._claim(intent, claimed, ticket, model.check_confirmable)
        return await self._authorize(
            claimed, merchant, card=command.card, seen=seen, ticket=ticket, fresh=True
        )

    async def _resolve_card(self, merchant: Merchant, principal: str, command: ConfirmIntent) -> TokenInfo:
        if command.card is not None:
            # The CVC stays in this process for this one authorization; the vault never holds it.
            return await self._vault.tokenize(
                command.card,
                merchant_id=merchant.id,
                principal=principal,
                hold_cvc=False,
                field_root="payment_method.card",
            )
        try:
            return await self._vault.token_metadata(
                command.token, merchant_id=merchant.id, principal=principal
            )
        except errors.NotFound:
            raise errors.NotFound(
                "no such token for this merchant",
                reason="TOKEN_NOT_FOUND",
                field_violations=[errors.FieldViolation("payment_method.token", "unknown token")],
            ) from None

    async def _route(self, preferred: str, country: str, amount: int) -> tuple[str, BreakerState] | None:
        """The first candidate whose breaker allows a call, with the state it was in."""
        for candidate in routing.candidates(preferred, country, amount):
            seen = await self._board.allow(candidate.provider)
            if seen is not None:
                return candidate.provider, seen
        return None

    async def _decline_unclaimed(
        self,
        intent: PaymentIntent,
        *,
        base: PaymentIntent,
        error: PaymentError,
        ticket: Ticket | None,
        fingerprint: str,
        attempt_id: str,
    ) -> PaymentIntent:
        """Decline without calling a provider (risk block, no provider available)."""
        declined = model.transition(base, Status.DECLINED, self._clock(), last_error=error)
        async with self._engine.begin() as connection:
            if not await repository.update_intent(
                connection, declined, expected_status=intent.status, expected_claim_id=None
            ):
                raise _busy()
            await repository.insert_events(connection, [self._event(declined, Status.DECLINED)])
            await self._idempotency.complete(connection, ticket, declined)
        await self._risk.record_decline(fingerprint=fingerprint, attempt_id=attempt_id)
        return declined

    async def _authorize(
        self,
        intent: PaymentIntent,
        merchant: Merchant,
        *,
        card: Card | None,
        seen: BreakerState,
        ticket: Ticket | None,
        fresh: bool,
    ) -> PaymentIntent:
        """Drive a claimed AUTHORIZE operation to its end."""
        operation = intent.operation
        assert operation is not None and operation.kind is OperationKind.AUTHORIZE
        try:
            transaction: ProviderTransaction | None = None
            if not fresh:
                # A resumption: ask first. The provider authorizes once per reference, so even
                # re-sending below cannot charge twice; asking avoids a needless reveal.
                transaction = await self._provider.find(
                    provider=operation.provider, reference=operation.reference
                )
            if transaction is None:
                if card is None:
                    card = await self._vault.reveal(
                        operation.token, merchant_id=intent.merchant_id, reference=intent.id
                    )
                transaction = await self._provider.authorize(
                    provider=operation.provider,
                    reference=operation.reference,
                    amount=operation.amount,
                    currency=intent.currency,
                    card=card,
                    merchant_id=intent.merchant_id,
                )
        except ProviderRefused as refused:
            if refused.is_processing_error:
                await self._board.record_failure(operation.provider)
            code = "processing_error"
            error = PaymentError(code, "", model.CUSTOMER_MESSAGES[code], operation.provider)
            return await self._finish_declined(intent, error, ticket)
        except ProviderOutcomeUnknown:
            await self._board.record_failure(operation.provider)
            return await self._park(intent, ticket)
        except errors.ClearhouseError:
            # The vault could not reveal the card, so the provider was not called: undo the claim.
            if fresh:
                await self._abandon_claim(intent)
            else:
                await self._release(intent)
            raise
        await self._board.record_success(operation.provider, seen)
        if transaction.status == "DECLINED":
            return await self._finish_declined(
                intent, model.decline_error(transaction.decline_code, operation.provider), ticket
            )
        return await self._after_authorization(intent, merchant, transaction, ticket)

    async def _after_authorization(
        self,
        intent: PaymentIntent,
        merchant: Merchant,
        transaction: ProviderTransaction,
        ticket: Ticket | None,
    ) -> PaymentIntent:
        """The provider authorized: (capture,) post to the ledger, record the state."""
        operation = intent.operation
        assert operation is not None
        captured = transaction.status == "CAPTURED"
        capture_unknown = False
        if operation.capture and not captured:
            try:
                await self._provider.capture(
                    provider=operation.provider,
                    transaction_id=transaction.id,
                    amount=operation.amount,
                    reference=_capture_reference(intent.id),
                )
                captured = True
            except ProviderOutcomeUnknown:
                capture_unknown = True
            except ProviderRefused as refused:
                log.warning(
                    "automatic capture refused by the provider",
                    extra={"payment_intent": intent.id, "reason": refused.reason},
                )
        transfers = [
            chart.authorization_transfer(intent.merchant_id, intent.id, operation.amount, intent.currency)
        ]
        if captured:
            transfers += chart.capture_transfers(
                intent.merchant_id, intent.id, operation.amount, operation.fee, intent.currency
            )
        try:
            await self._ledger.ensure_chart(intent.merchant_id, intent.currency)
            await self._ledger.post(transfers)
        except (errors.ClearhouseError, LedgerRefused) as failure:
            log.warning(
                "ledger posting failed; parked", extra={"payment_intent": intent.id, "error": str(failure)}
            )
            return await self._park(intent, ticket)
        now = self._clock()
        authorized = model.transition(
            intent,
            Status.AUTHORIZED,
            now,
            amount_capturable=operation.amount,
            provider=operation.provider,
            provider_reference=transaction.id,
            last_error=None,
            authorization_expires_at=now
            + datetime.timedelta(seconds=self._config.authorization_window_seconds),
            operation=None,
        )
        # Each event carries the object as it was at that step.
        snapshots = [authorized]
        final = authorized
        if captured:
            final = model.transition(
                authorized,
                Status.CAPTURED,
                now,
                amount_capturable=0,
                amount_captured=operation.amount,
                fee_amount=operation.fee,
                authorization_expires_at=None,
            )
            snapshots.append(final)
        elif capture_unknown:
            # Leave the capture to the resolver (same reference, so it happens at most once).
            final = dataclasses.replace(
                authorized,
                operation=Operation(
                    kind=OperationKind.CAPTURE,
                    claim_id=_claim_id(),
                    started_at=now,
                    lease_until=None,
                    amount=operation.amount,
                    provider=operation.provider,
                    fee=operation.fee,
                ),
            )
        return await self._commit_claimed(intent, final, snapshots, ticket, currency=intent.currency)

    async def _finish_declined(
        self, intent: PaymentIntent, error: PaymentError, ticket: Ticket | None
    ) -> PaymentIntent:
        operation = intent.operation
        assert operation is not None
        declined = model.transition(intent, Status.DECLINED, self._clock(), last_error=error, operation=None)
        result = await self._commit_claimed(intent, declined, [declined], ticket)
        fingerprint = intent.payment_method.fingerprint if intent.payment_method else ""
        await self._risk.record_decline(fingerprint=fingerprint, attempt_id=f"{intent.id}:{intent.attempt}")
        return result

    async def _park(self, intent: PaymentIntent, ticket: Ticket | None) -> PaymentIntent:
        """Outcome unknown: PROCESSING, with the operation left for the resolver."""
        operation = intent.operation
        assert operation is not None
        parked_operation = dataclasses.replace(operation, lease_until=None)
        if intent.status is Status.PROCESSING:
            parked = dataclasses.replace(intent, operation=parked_operation, updated_at=self._clock())
            snapshots: list[PaymentIntent] = []
        else:
            parked = model.transition(intent, Status.PROCESSING, self._clock(), operation=parked_operation)
            snapshots = [parked]
        return await self._commit_claimed(intent, parked, snapshots, ticket)

    # Capture ---------------------------------------------------------------------------------

    async def capture(
        self,
        caller: Caller,
        intent_id: str,
        amount_to_capture: int | None,
        ticket: Ticket | None,
        lease_seconds: float,
    ) -> PaymentIntent:
        """Capture all or part of an authorization; the rest is released."""
        merchant = caller.require(Permission.TRANSACT)
        intent = await self._load(merchant.id, intent_id)
        intent = await self._settle_in_flight(intent, merchant)
        if _is_resumption(ticket, intent):
            return await self._complete_with(ticket, intent)
        with translated():
            amount = model.capture_amount(intent, amount_to_capture)
        now = self._clock()
        operation = Operation(
            kind=OperationKind.CAPTURE,
            claim_id=_claim_id(),
            started_at=now,
            lease_until=now + datetime.timedelta(seconds=lease_seconds),
            amount=amount,
            provider=intent.provider,
            fee=merchant.pricing.fee(amount),
        )
        claimed = dataclasses.replace(intent, operation=operation, updated_at=now)
        await self._claim(intent, claimed, ticket, lambda winner: model.capture_amount(winner, None))
        return await self._capture(claimed, ticket)

    async def _capture(self, intent: PaymentIntent, ticket: Ticket | None) -> PaymentIntent:
        operation = intent.operation
        assert operation is not None and operation.kind is OperationKind.CAPTURE
        try:
            await self._provider.capture(
                provider=intent.provider,
                transaction_id=intent.provider_reference,
                amount=operation.amount,
                reference=_capture_reference(intent.id),
            )
        except ProviderRefused as refused:
            await self._abandon_claim(intent)
            raise errors.FailedPrecondition(
                "the provider refused the capture",
                reason="PROVIDER_REFUSED_CAPTURE",
                metadata={"provider_reason": refused.reason},
            ) from None
        except ProviderOutcomeUnknown:
            await self._release(intent)
            raise _outcome_unknown() from None
        await self._post_or_release(
            intent,
            chart.capture_transfers(
                intent.merchant_id, intent.id, operation.amount, operation.fee, intent.currency
            ),
        )
        captured = model.transition(
            intent,
            Status.CAPTURED,
            self._clock(),
            amount_capturable=0,
            amount_captured=operation.amount,
            fee_amount=operation.fee,
            authorization_expires_at=None,
            operation=None,
        )
        return await self._commit_claimed(intent, captured, [captured], ticket)

    # Cancel ----------------------------------------------------------------------------------

    async def cancel(
        self, caller: Caller, intent_id: str, reason: str, ticket: Ticket | None, lease_seconds: float
    ) -> PaymentIntent:
        """Cancel: void an authorization, or close a CREATED/DECLINED intent."""
        merchant = caller.require(Permission.TRANSACT)
        with translated():
            reason = model.validate_cancellation_reason(reason)
        intent = await self._load(merchant.id, intent_id)
        intent = await self._settle_in_flight(intent, merchant)
        if _is_resumption(ticket, intent):
            return await self._complete_with(ticket, intent)
        with translated():
            model.check_cancelable(intent)
        now = self._clock()
        if intent.status is not Status.AUTHORIZED:
            canceled = model.transition(intent, Status.CANCELED, now, cancellation_reason=reason)
            async with self._engine.begin() as connection:
                if not await repository.update_intent(
                    connection, canceled, expected_status=intent.status, expected_claim_id=None
                ):
                    raise _busy()
                await repository.insert_events(connection, [self._event(canceled, Status.CANCELED)])
                await self._idempotency.complete(connection, ticket, canceled)
            return canceled
        claimed = self._with_cancel_operation(intent, reason, now, lease_seconds)
        await self._claim(intent, claimed, ticket, model.check_cancelable)
        return await self._void(claimed, ticket)

    @staticmethod
    def _with_cancel_operation(
        intent: PaymentIntent, reason: str, now: datetime.datetime, lease_seconds: float
    ) -> PaymentIntent:
        operation = Operation(
            kind=OperationKind.CANCEL,
            claim_id=_claim_id(),
            started_at=now,
            lease_until=now + datetime.timedelta(seconds=lease_seconds),
            amount=intent.amount_capturable,
            provider=intent.provider,
            reason=reason,
        )
        return dataclasses.replace(intent, operation=operation, updated_at=now)

    async def _void(self, intent: PaymentIntent, ticket: Ticket | None) -> PaymentIntent:
        operation = intent.operation
        assert operation is not None and operation.kind is OperationKind.CANCEL
        try:
            await self._provider.void(provider=intent.provider, transaction_id=intent.provider_reference)
        except ProviderRefused as refused:
            # A repeated void is refused once the first went through: that is success.
            found = await self._find_quietly(intent)
            if found is None or found.status != "VOIDED":
                await self._abandon_claim(intent)
                raise errors.FailedPrecondition(
                    "the provider refused the void",
                    reason="PROVIDER_REFUSED_VOID",
                    metadata={"provider_reason": refused.reason},
                ) from None
        except ProviderOutcomeUnknown:
            await self._release(intent)
            raise _outcome_unknown() from None
        await self._post_or_release(
            intent, [chart.void_transfer(intent.id, operation.amount, intent.currency)]
        )
        canceled = model.transition(
            intent,
            Status.CANCELED,
            self._clock(),
            amount_capturable=0,
            cancellation_reason=operation.reason,
            authorization_expires_at=None,
            operation=None,
        )
        return await self._commit_claimed(intent, canceled, [canceled], ticket)

    async def _find_quietly(self, intent: PaymentIntent) -> ProviderTransaction | None:
        try:
            return await self._provider.find(
                provider=intent.provider, transaction_id=intent.provider_reference
            )
        except (ProviderRefused, ProviderOutcomeUnknown):
            return None

    # Recovery --------------------------------------------------------------------------------

    async def _settle_in_flight(self, intent: PaymentIntent, merchant: Merchant | None) -> PaymentIntent:
        """Finish a lapsed operation first; refuse while another request is working on one."""
        operation = intent.operation
        if operation is None:
            return intent
        if operation.lease_until is not None and operation.lease_until > self._clock():
            raise _busy()
        return await self.resolve(intent, merchant)

    async def resolve(self, intent: PaymentIntent, merchant: Merchant | None = None) -> PaymentIntent:
        """Take over the intent's unowned operation and drive it to its end (workers, retries)."""
        operation = intent.operation
        now = self._clock()
        if operation is None or (operation.lease_until is not None and operation.lease_until > now):
            return intent
        taken = dataclasses.replace(
            operation,
            claim_id=_claim_id(),
            lease_until=now + datetime.timedelta(seconds=self._config.resolve_lease_seconds),
        )
        claimed = dataclasses.replace(intent, operation=taken)
        async with self._engine.begin() as connection:
            won = await repository.update_intent(
                connection, claimed, expected_status=intent.status, expected_claim_id=operation.claim_id
            )
        if not won:
            return await self._load(None, intent.id)
        if merchant is None:
            async with self._engine.connect() as connection:
                merchant = await repository.get_merchant(connection, intent.merchant_id)
            assert merchant is not None
        if taken.kind is OperationKind.AUTHORIZE:
            return await self._authorize(
                claimed, merchant, card=None, seen=BreakerState.CLOSED, ticket=None, fresh=False
            )
        if taken.kind is OperationKind.CAPTURE:
            return await self._capture(claimed, None)
        return await self._void(claimed, None)

    async def resolve_pending(self) -> int:
        """Worker pass: resolve every operation nobody is working on; returns how many."""
        async with self._engine.begin() as connection:
            intent_ids = await repository.intents_needing_resolution(connection, self._clock(), JOB_BATCH_MAX)
        done = 0
        for intent_id in intent_ids:
            try:
                intent = await self._load(None, intent_id)
                if intent.operation is None:
                    continue
                await self.resolve(intent)
                done += 1
            except Exception:
                log.warning(
                    "could not resolve payment intent", extra={"payment_intent": intent_id}, exc_info=True
                )
        return done

    async def expire_authorizations(self) -> int:
        """Worker pass: void authorizations past their window; returns how many."""
        now = self._clock()
        async with self._engine.begin() as connection:
            intent_ids = await repository.expired_authorizations(connection, now, JOB_BATCH_MAX)
        done = 0
        for intent_id in intent_ids:
            try:
                intent = await self._load(None, intent_id)
                if intent.status is not Status.AUTHORIZED or intent.operation is not None:
                    continue
                claimed = self._with_cancel_operation(
                    intent, CANCELLATION_REASON_EXPIRED, now, self._config.resolve_lease_seconds
                )
                async with self._engine.begin() as connection:
                    if not await repository.update_intent(
                        connection, claimed, expected_status=Status.AUTHORIZED, expected_claim_id=None
                    ):
                        continue
                await self._void(claimed, None)
                done += 1
            except Exception:
                log.warning(
                    "could not expire authorization", extra={"payment_intent": intent_id}, exc_info=True
                )
        return done

    async def current(self, intent_id: str) -> PaymentIntent | None:
        """An intent by id, for the idempotency completer (None if it vanished)."""
        try:
            return await self._load(None, intent_id)
        except errors.NotFound:
            return None

    # Plumbing --------------------------------------------------------------------------------

    async def _claim(
        self,
        before: PaymentIntent,
        claimed: PaymentIntent,
        ticket: Ticket | None,
        guard: Callable[[PaymentIntent], object],
    ) -> None:
        """Record the operation (the recovery point) unless another request got there first.

        When the compare-and-set loses, `guard` re-checks the request against the state that
        won (e.g. a concurrent capture finished: PAYMENT_NOT_CAPTURABLE); otherwise BUSY.
        """
        async with self._engine.begin() as connection:
            if await repository.update_intent(
                connection, claimed, expected_status=before.status, expected_claim_id=None
            ):
                await self._idempotency.mark(connection, ticket, f"intent:{before.id}")
                return
            winner = await repository.get_intent(connection, before.id)
        if winner is not None and winner.operation is None:
            with translated():
                guard(winner)
        raise _busy()

    async def _commit_claimed(
        self,
        before: PaymentIntent,
        after: PaymentIntent,
        snapshots: Sequence[PaymentIntent],
        ticket: Ticket | None,
        currency: str = "",
    ) -> PaymentIntent:
        """Store the result of a claimed operation, its events and the idempotent response."""
        operation = before.operation
        assert operation is not None
        async with self._engine.begin() as connection:
            won = await repository.update_intent(
                connection, after, expected_status=before.status, expected_claim_id=operation.claim_id
            )
            if not won:
                # Someone took the operation over (our lease lapsed) and finished it: theirs stands.
                current = await repository.get_intent(connection, before.id)
                assert current is not None
                await self._idempotency.complete(connection, ticket, current)
                return current
            remember = bool(currency) and (after.merchant_id, currency) not in self._known_currencies
            if remember:
                await repository.add_merchant_currency(connection, after.merchant_id, currency)
            await repository.insert_events(connection, [self._event(s, s.status) for s in snapshots])
            await self._idempotency.complete(connection, ticket, after)
        if remember:
            if len(self._known_currencies) >= KNOWN_CURRENCIES_MAX:
                self._known_currencies.clear()
            self._known_currencies.add((after.merchant_id, currency))
        return after

    async def _abandon_claim(self, intent: PaymentIntent) -> None:
        """Drop an operation that certainly did nothing outside (the intent is as before)."""
        operation = intent.operation
        assert operation is not None
        async with self._engine.begin() as connection:
            await repository.update_intent(
                connection,
                dataclasses.replace(intent, operation=None),
                expected_status=intent.status,
                expected_claim_id=operation.claim_id,
            )

    async def _release(self, intent: PaymentIntent) -> None:
        operation = intent.operation
        assert operation is not None
        async with self._engine.begin() as connection:
            await repository.release_operation_lease(connection, intent.id, operation.claim_id)

    async def _post_or_release(self, intent: PaymentIntent, transfers: list[chart.TransferSpec]) -> None:
        try:
            await self._ledger.ensure_chart(intent.merchant_id, intent.currency)
            await self._ledger.post(transfers)
        except errors.ClearhouseError:
            await self._release(intent)
            raise
        except LedgerRefused as refused:
            await self._release(intent)
            log.error(
                "ledger refused a posting", extra={"payment_intent": intent.id, "results": refused.results}
            )
            raise errors.Internal("the ledger refused the posting", reason="LEDGER_REFUSED") from None

    async def _complete_with(self, ticket: Ticket | None, intent: PaymentIntent) -> PaymentIntent:
        async with self._engine.begin() as connection:
            await self._idempotency.complete(connection, ticket, intent)
        return intent

    def _event(self, intent: PaymentIntent, status: Status) -> Event:
        return Event(
            id=ids.new_id("evt"),
            type=INTENT_EVENT_TYPES[status],
            merchant_id=intent.merchant_id,
            object_id=intent.id,
            data={"object": self._render(intent)},
            created_at=intent.updated_at,
            trace_id=current_trace_id(),
        )


def _claim_id() -> str:
    return secrets.token_hex(8)


def _busy() -> errors.ClearhouseError:
    return errors.Aborted(
        "another operation on this payment intent is in progress; retry shortly",
        reason="PAYMENT_INTENT_BUSY",
        retry_after_seconds=1.0,
    )


def _outcome_unknown() -> errors.ClearhouseError:
    return errors.Unavailable(
        "the provider did not answer in time; the outcome is resolved automatically",
        reason="PROVIDER_OUTCOME_UNKNOWN",
        retry_after_seconds=5.0,
    )


def _is_resumption(ticket: Ticket | None, intent: PaymentIntent) -> bool:
    """A keyed retry of a request that had already recorded its operation on this intent."""
    return ticket is not None and ticket.resumed and ticket.recovery_point == f"intent:{intent.id}"


def _details(token: TokenInfo) -> PaymentMethodDetails:
    return PaymentMethodDetails(
        token=token.token,
        brand=token.brand,
        last4=token.last4,
        exp_month=token.exp_month,
        exp_year=token.exp_year,
        fingerprint=token.fingerprint,
        country=token.country,
    )
