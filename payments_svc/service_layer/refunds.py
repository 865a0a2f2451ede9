"""Refunds with maker-checker (DESIGN.md §3).

Create (role OPERATOR/ADMIN) → PENDING_APPROVAL, no provider call. Approve by a *different*
principal of the same merchant (identity from the API key) → the checker claims the refund
(APPROVING, a compare-and-set, so one approval wins) → provider refund (idempotent by the refund
id) → SUCCEEDED with the intent's `amount_refunded` and the ledger posting in one transaction, or
FAILED with the provider's reason and the money untouched.

Pending + succeeded refunds never exceed the captured amount: creation sums them under a lock of
the intent's row (PostgreSQL `FOR UPDATE`; SQLite's single writer serializes), so concurrent
requests cannot both pass the check.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from chassis import errors, ids
from payments_svc.adapters import money_repository as store
from payments_svc.adapters import repository
from payments_svc.adapters.provider_money import ProviderMoneyClient, ProviderOutcomeUnknown, ProviderRefused
from payments_svc.domain import postings as book
from payments_svc.domain import refunds as model
from payments_svc.domain.events import INTENT_EVENT_TYPES
from payments_svc.domain.merchants import Permission
from payments_svc.domain.payments import PaymentIntent, Status, validate_amount, validate_metadata
from payments_svc.domain.refunds import Refund, RefundReason, RefundStatus
from payments_svc.service_layer.auth import Caller
from payments_svc.service_layer.errors import translated
from payments_svc.service_layer.idempotency import Idempotency, Ticket
from payments_svc.service_layer.postings import Postings, new_event, parse_cursor, valid_id
from payments_svc.service_layer.reads import page_limit

log = logging.getLogger("payments.refunds")
JOB_BATCH_MAX = 100
FAILURE_MESSAGE_LENGTH_MAX = 500


@dataclasses.dataclass(frozen=True, slots=True)
class CreateRefund:
    """Command: request a refund."""

    intent_id: str
    amount: int | None
    reason: RefundReason
    metadata: dict[str, str]


class RefundService:
    """Refund requests, approvals, rejections and reads."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        idempotency: Idempotency,
        provider: ProviderMoneyClient,
        postings: Postings,
        render_refund: Callable[[Refund], dict[str, Any]],
        render_intent: Callable[[PaymentIntent], dict[str, Any]],
        clock: Callable[[], datetime.datetime],
        lease_seconds: float,
    ) -> None:
        self._engine = engine
        self._idempotency = idempotency
        self._provider = provider
        self._postings = postings
        self._render = render_refund
        self._render_intent = render_intent
        self._clock = clock
        self._lease_seconds = lease_seconds

    def _event(self, refund: Refund, type_: str) -> Any:
        return new_event(type_, refund.merchant_id, refund.id, self._render(refund), refund.updated_at)

    async def _load(self, merchant_id: str | None, refund_id: str) -> Refund:
        if not valid_id(refund_id, "re"):
            raise errors.NotFound("no such refund", reason="REFUND_NOT_FOUND")
        async with self._engine.connect() as connection:
            found = await store.get_refund(connection, refund_id, merchant_id)
        if found is None:
            raise errors.NotFound("no such refund", reason="REFUND_NOT_FOUND")
        return found

    async def get(self, caller: Caller, refund_id: str) -> Refund:
        """One refund of the caller's merchant."""
        merchant = caller.require(Permission.READ)
        return await self._load(merchant.id, refund_id)

    async def list_page(
        self, caller: Caller, *, limit: int, starting_after: str, intent_id: str, status: RefundStatus | None
    ) -> tuple[list[Refund], bool]:
        """One page, newest first (APPROVING shows under PENDING_APPROVAL)."""
        merchant = caller.require(Permission.READ)
        statuses: list[str] = []
        if status is not None:
            statuses = [status.value]
            if status is RefundStatus.PENDING_APPROVAL:
                statuses.append(RefundStatus.APPROVING.value)
        async with self._engine.connect() as connection:
            return await store.list_refunds(
                connection,
                merchant.id,
                limit=page_limit(limit),
                starting_after=parse_cursor(starting_after, "re"),
                intent_id=intent_id,
                status=statuses,
            )

    async def create(self, caller: Caller, command: CreateRefund, ticket: Ticket | None) -> Refund:
        """A refund in PENDING_APPROVAL; no provider call before a second principal approves."""
        merchant = caller.require(Permission.TRANSACT)
        with translated():
            if command.amount is not None:
                validate_amount(command.amount)
            metadata = validate_metadata(command.metadata)
        if not valid_id(command.intent_id, "pi"):
            raise errors.NotFound("no such payment intent", reason="PAYMENT_INTENT_NOT_FOUND")
        now = self._clock()
        async with self._engine.begin() as connection:
            # The lock makes concurrent requests on one payment see each other's refunds.
            await store.lock_intent(connection, command.intent_id)
            intent = await repository.get_intent(connection, command.intent_id, merchant.id)
            if intent is None:
                raise errors.NotFound("no such payment intent", reason="PAYMENT_INTENT_NOT_FOUND")
            reserved = await store.reserved_refund_total(connection, intent.id)
            with translated():
                amount = model.check_refundable(intent, command.amount, reserved)
            refund = Refund(
                id=ids.new_id("re"),
                merchant_id=merchant.id,
                payment_intent_id=intent.id,
                amount=amount,
                currency=intent.currency,
                status=RefundStatus.PENDING_APPROVAL,
                reason=command.reason,
                requested_by=caller.principal,
                created_at=now,
                updated_at=now,
                metadata=metadata,
            )
            await store.insert_refund(connection, refund)
            await repository.insert_events(connection, [self._event(refund, "refund.created")])
            await self._idempotency.complete(connection, ticket, refund)
        return refund

    async def reject(self, caller: Caller, refund_id: str, reason: str, ticket: Ticket | None) -> Refund:
        """PENDING_APPROVAL → REJECTED with a reason (the requester may withdraw their own)."""
        merchant = caller.require(Permission.TRANSACT)
        with translated():
            reason = model.validate_rejection_reason(reason)
        refund = await self._load(merchant.id, refund_id)
        with translated():
            model.check_reviewable(refund)
        rejected = dataclasses.replace(
            refund,
            status=RefundStatus.REJECTED,
            reviewed_by=caller.principal,
            rejection_reason=reason,
            updated_at=self._clock(),
        )
        async with self._engine.begin() as connection:
            if not await store.update_refund(connection, rejected, expected=RefundStatus.PENDING_APPROVAL):
                raise _not_pending()
            await repository.insert_events(connection, [self._event(rejected, "refund.rejected")])
            await self._idempotency.complete(connection, ticket, rejected)
        return rejected

    async def approve(self, caller: Caller, refund_id: str, ticket: Ticket | None) -> Refund:
        """A second principal approves: the provider refunds, then SUCCEEDED or FAILED."""
        merchant = caller.require(Permission.TRANSACT)
        refund = await self._load(merchant.id, refund_id)
        with translated():
            model.check_checker(refund, caller.principal)
            model.check_reviewable(refund)
        now = self._clock()
        claimed = dataclasses.replace(
            refund,
            status=RefundStatus.APPROVING,
            reviewed_by=caller.principal,
            lease_until=now + datetime.timedelta(seconds=self._lease_seconds),
            updated_at=now,
        )
        async with self._engine.begin() as connection:
            if not await store.update_refund(connection, claimed, expected=RefundStatus.PENDING_APPROVAL):
                raise _not_pending()
        return await self._execute(claimed, ticket)

    async def _execute(self, refund: Refund, ticket: Ticket | None) -> Refund:
        """Drive a claimed (APPROVING) refund to SUCCEEDED or FAILED."""
        async with self._engine.connect() as connection:
            intent = await repository.get_intent(connection, refund.payment_intent_id)
        assert intent is not None
        try:
            result = await self._provider.refund(
                provider=intent.provider,
                transaction_id=intent.provider_reference,
                amount=refund.amount,
                reference=refund.id,
            )
        except ProviderRefused as refused:
            failed = dataclasses.replace(
                refund,
                status=RefundStatus.FAILED,
                failure_code=refused.reason.lower(),
                failure_message=refused.message[:FAILURE_MESSAGE_LENGTH_MAX],
                lease_until=None,
                updated_at=self._clock(),
            )
            async with self._engine.begin() as connection:
                if not await store.update_refund(connection, failed, expected=RefundStatus.APPROVING):
                    return await self._current(refund.id, ticket)
                await repository.insert_events(connection, [self._event(failed, "refund.failed")])
                await self._idempotency.complete(connection, ticket, failed)
            return failed
        except ProviderOutcomeUnknown:
            # The provider may have refunded: the resolver repeats the call with the same
            # reference (at most one refund at the provider) once the lease is dropped.
            released = dataclasses.replace(refund, lease_until=None)
            async with self._engine.begin() as connection:
                await store.update_refund(connection, released, expected=RefundStatus.APPROVING)
            raise errors.Unavailable(
                "the provider did not answer in time; the refund is completed automatically",
                reason="PROVIDER_OUTCOME_UNKNOWN",
                retry_after_seconds=5.0,
            ) from None
        return await self._succeed(refund, result.id, ticket)

    async def _succeed(self, refund: Refund, provider_reference: str, ticket: Ticket | None) -> Refund:
        now = self._clock()
        succeeded = dataclasses.replace(
            refund,
            status=RefundStatus.SUCCEEDED,
            provider_reference=provider_reference,
            lease_until=None,
            updated_at=now,
        )
        async with self._engine.begin() as connection:
            if not await store.update_refund(connection, succeeded, expected=RefundStatus.APPROVING):
                return await self._current(refund.id, ticket)
            await store.lock_intent(connection, refund.payment_intent_id)
            intent = await repository.get_intent(connection, refund.payment_intent_id)
            assert intent is not None
            after = model.intent_after_refund(intent, refund.amount, now)
            claim = intent.operation.claim_id if intent.operation else None
            if not await repository.update_intent(
                connection, after, expected_status=intent.status, expected_claim_id=claim
            ):
                raise errors.Aborted(
                    "the payment intent changed concurrently; retry", reason="PAYMENT_INTENT_BUSY"
                )
            batch = [self._event(succeeded, "refund.succeeded")]
            if after.status is Status.REFUNDED and intent.status is not Status.REFUNDED:
                batch.append(
                    new_event(
                        INTENT_EVENT_TYPES[Status.REFUNDED],
                        after.merchant_id,
                        after.id,
                        self._render_intent(after),
                        now,
                    )
                )
            await repository.insert_events(connection, batch)
            queued = await self._postings.queue(
                connection,
                f"{refund.id}:refund",
                refund.merchant_id,
                refund.currency,
                book.refund_transfers(
                    refund.merchant_id, refund.id, intent.id, refund.amount, refund.currency
                ),
            )
            await self._idempotency.complete(connection, ticket, succeeded)
        await self._postings.flush([queued])
        return succeeded

    async def _current(self, refund_id: str, ticket: Ticket | None) -> Refund:
        current = await self._load(None, refund_id)
        async with self._engine.begin() as connection:
            await self._idempotency.complete(connection, ticket, current)
        return current

    async def resolve_stalled(self) -> int:
        """Job pass: finish approved refunds whose provider call has no live owner."""
        now = self._clock()
        lease = now + datetime.timedelta(seconds=self._lease_seconds)
        async with self._engine.begin() as connection:
            refund_ids = await store.stalled_refunds(connection, now, JOB_BATCH_MAX)
            claimed: list[Refund] = []
            for refund_id in refund_ids:
                found = await store.get_refund(connection, refund_id)
                if found is None:
                    continue
                taken = dataclasses.replace(found, lease_until=lease)
                if await store.update_refund(connection, taken, expected=RefundStatus.APPROVING):
                    claimed.append(taken)
        done = 0
        for refund in claimed:
            try:
                await self._execute(refund, None)
                done += 1
            except Exception:
                log.warning("could not finish refund", extra={"refund": refund.id}, exc_info=True)
        return done


def _not_pending() -> errors.ClearhouseError:
    return errors.FailedPrecondition(
        "the refund is no longer pending approval", reason="REFUND_NOT_PENDING_APPROVAL"
    )
