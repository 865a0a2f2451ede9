"""Disputes and the provider webhooks that open and close them (DESIGN.md §3).

A dispute opens from a signed provider chargeback webhook (or CreateDispute, for simulation):
intent → DISPUTED, the amount moves from available to reserved and the dispute fee is charged,
all queued for the ledger in the transaction that opens it. Evidence → UNDER_REVIEW. Resolve
(platform admin or the provider's webhook): WON reinstates the amount, LOST gives it up.

Provider webhooks are verified (HMAC over the raw body, 300 s tolerance) before anything is read,
and applied once: the event id is stored in the transaction of its effect, and a chargeback
opens at most one dispute (unique provider dispute key).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import sqlalchemy.exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chassis import errors, ids, signatures
from payments_svc.adapters import money_repository as store
from payments_svc.adapters import repository
from payments_svc.domain import disputes as model
from payments_svc.domain import payments as intents
from payments_svc.domain import postings as book
from payments_svc.domain.disputes import Dispute, DisputeReason, DisputeStatus
from payments_svc.domain.events import INTENT_EVENT_TYPES
from payments_svc.domain.merchants import Permission
from payments_svc.domain.payments import PROVIDERS, PaymentIntent, Status
from payments_svc.service_layer.auth import Caller
from payments_svc.service_layer.errors import translated
from payments_svc.service_layer.idempotency import Idempotency, Ticket
from payments_svc.service_layer.postings import Postings, Queued, new_event, parse_cursor, valid_id
from payments_svc.service_layer.reads import page_limit

log = logging.getLogger("payments.disputes")
WEBHOOK_BODY_BYTES_MAX = 64 * 1024
CHARGEBACK_OPENED = "chargeback.opened"
CHARGEBACK_WON = "chargeback.won"
CHARGEBACK_LOST = "chargeback.lost"

Extra = Callable[[AsyncConnection], Awaitable[None]]


class _AlreadyApplied(Exception):
    """A concurrent copy of the same provider event won the race: roll back, report duplicate."""


@dataclasses.dataclass(frozen=True, slots=True)
class WebhookOutcome:
    """What ReceiveProviderWebhook answers."""

    event_id: str
    duplicate: bool
    result: str


class DisputeService:
    """Disputes and provider webhooks."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        idempotency: Idempotency,
        postings: Postings,
        render_dispute: Callable[[Dispute], dict[str, Any]],
        render_intent: Callable[[PaymentIntent], dict[str, Any]],
        clock: Callable[[], datetime.datetime],
        dispute_fee: int,
        provider_secrets: Mapping[str, str],
        signature_tolerance_seconds: int = signatures.TOLERANCE_SECONDS,
    ) -> None:
        self._engine = engine
        self._idempotency = idempotency
        self._postings = postings
        self._render = render_dispute
        self._render_intent = render_intent
        self._clock = clock
        self._fee = dispute_fee
        self._secrets = dict(provider_secrets)
        self._tolerance_seconds = signature_tolerance_seconds

    # Reads -----------------------------------------------------------------------------------

    async def _load(self, merchant_id: str | None, dispute_id: str) -> Dispute:
        if not valid_id(dispute_id, "dp"):
            raise errors.NotFound("no such dispute", reason="DISPUTE_NOT_FOUND")
        async with self._engine.connect() as connection:
            found = await store.get_dispute(connection, dispute_id, merchant_id)
        if found is None:
            raise errors.NotFound("no such dispute", reason="DISPUTE_NOT_FOUND")
        return found

    async def get(self, caller: Caller, dispute_id: str) -> Dispute:
        """One dispute (the platform admin sees every merchant's)."""
        if caller.is_platform:
            return await self._load(None, dispute_id)
        merchant = caller.require(Permission.READ)
        return await self._load(merchant.id, dispute_id)

    async def list_page(
        self, caller: Caller, *, limit: int, starting_after: str, intent_id: str, status: DisputeStatus | None
    ) -> tuple[list[Dispute], bool]:
        """One page of the merchant's disputes, newest first."""
        merchant = caller.require(Permission.READ)
        async with self._engine.connect() as connection:
            return await store.list_disputes(
                connection,
                merchant.id,
                limit=page_limit(limit),
                starting_after=parse_cursor(starting_after, "dp"),
                intent_id=intent_id,
                status=status.value if status else "",
            )

    # Commands --------------------------------------------------------------------------------

    async def create(
        self, caller: Caller, intent_id: str, amount: int | None, reason: DisputeReason, ticket: Ticket | None
    ) -> Dispute:
        """Open a dispute for simulation (a merchant key with TRANSACT, or the platform admin)."""
        merchant_id = None if caller.is_platform else caller.require(Permission.TRANSACT).id
        if not valid_id(intent_id, "pi"):
            raise errors.NotFound("no such payment intent", reason="PAYMENT_INTENT_NOT_FOUND")
        dispute, queued = await self._open(
            intent_id,
            merchant_id=merchant_id,
            amount=amount,
            reason=reason,
            provider_key="",
            ticket=ticket,
            extra=None,
        )
        await self._postings.flush(queued)
        return dispute

    async def submit_evidence(
        self, caller: Caller, dispute_id: str, evidence: Mapping[str, str], ticket: Ticket | None
    ) -> Dispute:
        """OPENED/UNDER_REVIEW → UNDER_REVIEW with the evidence."""
        merchant = caller.require(Permission.TRANSACT)
        with translated():
            checked = model.validate_evidence(evidence)
        dispute = await self._load(merchant.id, dispute_id)
        with translated():
            after = model.submit_evidence(dispute, checked, self._clock())
        async with self._engine.begin() as connection:
            if not await store.update_dispute(connection, after, expected=dispute.status):
                raise errors.Aborted("the dispute changed concurrently; retry", reason="DISPUTE_BUSY")
            await repository.insert_events(connection, [self._event(after, "dispute.updated")])
            await self._idempotency.complete(connection, ticket, after)
        return after

    async def resolve(self, caller: Caller, dispute_id: str, won: bool, ticket: Ticket | None) -> Dispute:
        """Close as WON or LOST (platform admin only)."""
        caller.require_platform()
        dispute = await self._load(None, dispute_id)
        after, queued = await self._close(dispute, won, ticket, None)
        await self._postings.flush(queued)
        return after

    # Provider webhooks -----------------------------------------------------------------------

    async def receive_webhook(self, provider: str, body: bytes, signature: str | None) -> WebhookOutcome:
        """Verify, dedupe and apply one provider webhook."""
        if provider not in PROVIDERS or provider not in self._secrets:
            raise errors.NotFound("no such provider", reason="UNKNOWN_PROVIDER")
        if len(body) > WEBHOOK_BODY_BYTES_MAX:
            raise errors.InvalidArgument("the webhook body is too large", reason="WEBHOOK_BODY_TOO_LARGE")
        try:
            signatures.verify(
                self._secrets[provider],
                signature,
                body,
                tolerance_seconds=self._tolerance_seconds,
                now=self._clock().timestamp(),
            )
        except signatures.SignatureError as refused:
            raise errors.Unauthenticated(
                f"provider signature refused: {refused}", reason=refused.reason
            ) from None
        event = _parse_event(body, provider)
        async with self._engine.connect() as connection:
            seen = await store.provider_event_result(connection, provider, event["id"])
        if seen is not None:
            return WebhookOutcome(event["id"], True, seen)
        try:
            result = await self._apply(provider, event)
        except _AlreadyApplied:
            async with self._engine.connect() as connection:
                seen = await store.provider_event_result(connection, provider, event["id"])
            return WebhookOutcome(event["id"], True, seen or "")
        return WebhookOutcome(event["id"], False, result)

    async def _apply(self, provider: str, event: dict[str, Any]) -> str:
        event_id, type_, data = event["id"], event["type"], event["data"]
        now = self._clock()

        def recorder(result: str) -> Extra:
            async def record(connection: AsyncConnection) -> None:
                if not await store.record_provider_event(
                    connection, provider, event_id, type_=type_, result=result, now=now
                ):
                    raise _AlreadyApplied

            return record

        dispute_key = f"{provider}:{data['dispute_id']}"
        if type_ == CHARGEBACK_OPENED:
            async with self._engine.connect() as connection:
                existing = await store.dispute_by_provider_key(connection, dispute_key)
            if existing is not None:
                result = f"dispute_exists {existing.id}"
                async with self._engine.begin() as connection:
                    await recorder(result)(connection)
                return result
            intent_id = str(data["reference"]).split(":", 1)[0]
            if not valid_id(intent_id, "pi"):
                raise errors.NotFound(
                    "the chargeback names no known payment", reason="PAYMENT_INTENT_NOT_FOUND"
                )
            # The dispute id is chosen first so the recorded result can name it.
            dispute_id = ids.new_id("dp")
            try:
                dispute, queued = await self._open(
                    intent_id,
                    merchant_id=str(data.get("merchant_id") or "") or None,
                    amount=int(data["amount"]) or None,
                    reason=model.reason_from_provider(str(data.get("reason", ""))),
                    provider_key=dispute_key,
                    ticket=None,
                    extra=recorder(f"dispute_opened {dispute_id}"),
                    dispute_id=dispute_id,
                    provider_dispute_id=str(data["dispute_id"]),
                )
            except sqlalchemy.exc.IntegrityError:
                # A concurrent copy opened it (unique provider dispute key).
                raise _AlreadyApplied from None
            await self._postings.flush(queued)
            return f"dispute_opened {dispute.id}"
        if type_ in (CHARGEBACK_WON, CHARGEBACK_LOST):
            async with self._engine.connect() as connection:
                existing = await store.dispute_by_provider_key(connection, dispute_key)
            if existing is None:
                # Not opened here yet (its opening webhook is still on its way): the provider retries.
                raise errors.FailedPrecondition(
                    "no dispute for this chargeback yet", reason="DISPUTE_NOT_FOUND", retry_after_seconds=1.0
                )
            if existing.status not in model.OPEN:
                result = f"dispute_already_closed {existing.id}"
                async with self._engine.begin() as connection:
                    await recorder(result)(connection)
                return result
            won = type_ == CHARGEBACK_WON
            outcome = "won" if won else "lost"
            _, queued = await self._close(existing, won, None, recorder(f"dispute_{outcome} {existing.id}"))
            await self._postings.flush(queued)
            return f"dispute_{outcome} {existing.id}"
        result = f"ignored {type_[:64]}"
        async with self._engine.begin() as connection:
            await recorder(result)(connection)
        return result

    # Core ------------------------------------------------------------------------------------

    async def _open(
        self,
        intent_id: str,
        *,
        merchant_id: str | None,
        amount: int | None,
        reason: DisputeReason,
        provider_key: str,
        ticket: Ticket | None,
        extra: Extra | None,
        dispute_id: str = "",
        provider_dispute_id: str = "",
    ) -> tuple[Dispute, list[Queued]]:
        now = self._clock()
        async with self._engine.begin() as connection:
            await store.lock_intent(connection, intent_id)
            intent = await repository.get_intent(connection, intent_id, merchant_id)
            if intent is None:
                raise errors.NotFound("no such payment intent", reason="PAYMENT_INTENT_NOT_FOUND")
            if intent.operation is not None:
                raise errors.Aborted("the payment intent is busy; retry", reason="PAYMENT_INTENT_BUSY")
            with translated():
                disputed = model.disputed_amount(intent, amount)
            dispute = Dispute(
                id=dispute_id or ids.new_id("dp"),
                merchant_id=intent.merchant_id,
                payment_intent_id=intent.id,
                amount=disputed,
                currency=intent.currency,
                fee=self._fee,
                status=DisputeStatus.OPENED,
                reason=reason,
                intent_status_before=intent.status,
                created_at=now,
                updated_at=now,
                provider_dispute_id=provider_dispute_id,
                provider_dispute_key=provider_key or None,
            )
            await store.insert_dispute(connection, dispute)
            after = intents.transition(intent, Status.DISPUTED, now, amount_disputed=disputed)
            if not await repository.update_intent(
                connection, after, expected_status=intent.status, expected_claim_id=None
            ):
                raise errors.Aborted("the payment intent is busy; retry", reason="PAYMENT_INTENT_BUSY")
            await repository.insert_events(
                connection,
                [
                    self._event(dispute, "dispute.created"),
                    new_event(
                        INTENT_EVENT_TYPES[Status.DISPUTED],
                        after.merchant_id,
                        after.id,
                        self._render_intent(after),
                        now,
                    ),
                ],
            )
            queued = await self._postings.queue(
                connection,
                f"{dispute.id}:open",
                dispute.merchant_id,
                dispute.currency,
                book.dispute_open_transfers(
                    dispute.merchant_id, dispute.id, disputed, dispute.fee, dispute.currency
                ),
            )
            if extra is not None:
                await extra(connection)
            await self._idempotency.complete(connection, ticket, dispute)
        return dispute, [queued]

    async def _close(
        self, dispute: Dispute, won: bool, ticket: Ticket | None, extra: Extra | None
    ) -> tuple[Dispute, list[Queued]]:
        now = self._clock()
        with translated():
            after = model.resolve(dispute, won, now)
        async with self._engine.begin() as connection:
            if not await store.update_dispute(connection, after, expected=dispute.status):
                raise errors.Aborted("the dispute changed concurrently; retry", reason="DISPUTE_BUSY")
            batch = [self._event(after, "dispute.won" if won else "dispute.lost")]
            if won:
                await store.lock_intent(connection, dispute.payment_intent_id)
                intent = await repository.get_intent(connection, dispute.payment_intent_id)
                assert intent is not None
                if intent.status is Status.DISPUTED:
                    settled = await store.is_settled(connection, intent.id)
                    back = intents.transition(intent, Status.SETTLED if settled else Status.CAPTURED, now)
                    if not await repository.update_intent(
                        connection, back, expected_status=Status.DISPUTED, expected_claim_id=None
                    ):
                        raise errors.Aborted(
                            "the payment intent is busy; retry", reason="PAYMENT_INTENT_BUSY"
                        )
                transfers = book.dispute_won_transfers(
                    dispute.merchant_id, dispute.id, dispute.amount, dispute.currency
                )
            else:
                transfers = book.dispute_lost_transfers(
                    dispute.merchant_id, dispute.id, dispute.amount, dispute.currency
                )
            await repository.insert_events(connection, batch)
            queued = await self._postings.queue(
                connection, f"{dispute.id}:close", dispute.merchant_id, dispute.currency, transfers
            )
            if extra is not None:
                await extra(connection)
            await self._idempotency.complete(connection, ticket, after)
        return after, [queued]

    def _event(self, dispute: Dispute, type_: str) -> Any:
        return new_event(type_, dispute.merchant_id, dispute.id, self._render(dispute), dispute.updated_at)


def _parse_event(body: bytes, provider: str) -> dict[str, Any]:
    """The webhook JSON, checked for the fields this service reads."""
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise errors.InvalidArgument("the webhook body is not JSON", reason="WEBHOOK_BODY_INVALID") from None
    if not isinstance(event, dict):
        raise errors.InvalidArgument("the webhook body is not a JSON object", reason="WEBHOOK_BODY_INVALID")
    data = event.get("data")
    event_id = event.get("id")
    if (
        not isinstance(event_id, str)
        or not 1 <= len(event_id) <= 128
        or not isinstance(event.get("type"), str)
        or not isinstance(data, dict)
        or not isinstance(data.get("dispute_id", ""), str)
    ):
        raise errors.InvalidArgument("the webhook event is malformed", reason="WEBHOOK_BODY_INVALID")
    if event.get("provider", provider) != provider:
        raise errors.InvalidArgument(
            "the event belongs to another provider", reason="WEBHOOK_PROVIDER_MISMATCH"
        )
    if event["type"].startswith("chargeback.") and not (
        data.get("dispute_id")
        and isinstance(data.get("reference"), str)
        and isinstance(data.get("amount"), int)
    ):
        raise errors.InvalidArgument("the chargeback event is malformed", reason="WEBHOOK_BODY_INVALID")
    data.setdefault("dispute_id", "")
    return event
