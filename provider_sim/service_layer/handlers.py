"""Use cases of the simulated acquirers: authorize, capture, void, refund, chargebacks, reports.

Each mutating call draws its random fate up front (failure injection), sleeps the simulated
latency outside any database transaction, then applies the domain change in one transaction.
Replays (a repeated reference) are answered from storage before anything is drawn, so they never
fail by injection and never shift the seeded sequence.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import hmac
import logging
import os
import pathlib
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from sqlalchemy.exc import IntegrityError

from chassis import errors, ids
from chassis.money import AMOUNT_MAX, MoneyError, validate_amount, validate_currency
from provider_sim.adapters.repository import SqlRepository, SqlUnitOfWork
from provider_sim.domain import model
from provider_sim.domain.decisions import Outcome, decide
from provider_sim.domain.injection import Draw, FailureConfig, Injected, Injector
from provider_sim.domain.model import (
    REASON_LENGTH_MAX,
    REFERENCE_LENGTH_MAX,
    CardBehaviour,
    Dispute,
    DisputeStatus,
    DomainError,
    ErrorKind,
    InvalidRequest,
    Refund,
    Status,
    Transaction,
    UnknownTransaction,
)
from provider_sim.domain.settlement import build_report
from provider_sim.domain.webhooks import EventType, chargeback_body
from provider_sim.service_layer import commands
from provider_sim.service_layer.commands import Counters, ProviderStateView

log = logging.getLogger("provider_sim")

# A timed-out call waits this much longer than the caller's deadline, so the caller surely gives up.
TIMEOUT_MARGIN_SECONDS = 1.0
# The longest a timed-out call waits, whatever the deadline: never forever.
TIMEOUT_HANG_SECONDS_MAX = 30.0
# How long a processing_error suggests waiting before a retry.
PROCESSING_ERROR_RETRY_SECONDS = 1.0
DEFAULT_CHARGEBACK_REASON = "fraudulent"

T = TypeVar("T")
Clock = Callable[[], datetime.datetime]


def utc_now() -> datetime.datetime:
    """The current time, UTC."""
    return datetime.datetime.now(datetime.UTC)


_ERROR_CLASSES: dict[ErrorKind, type[errors.ClearhouseError]] = {
    ErrorKind.INVALID_ARGUMENT: errors.InvalidArgument,
    ErrorKind.FAILED_PRECONDITION: errors.FailedPrecondition,
    ErrorKind.NOT_FOUND: errors.NotFound,
}


def to_chassis_error(error: DomainError) -> errors.ClearhouseError:
    """The one mapping of domain errors onto chassis errors (and so onto gRPC statuses)."""
    violations = [errors.FieldViolation(error.field, error.message)] if error.field else []
    return _ERROR_CLASSES[error.kind](error.message, reason=error.reason, field_violations=violations)


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Re-raise domain errors as chassis errors with the same stable reason."""
    try:
        yield
    except DomainError as error:
        raise to_chassis_error(error) from None


def _check_reference(value: str, field: str, *, required: bool = True) -> str:
    if (required and not value) or len(value) > REFERENCE_LENGTH_MAX:
        raise InvalidRequest(
            f"{field} must be 1-{REFERENCE_LENGTH_MAX} characters", reason="INVALID_REFERENCE", field=field
        )
    return value


def _check_money(amount: int, currency: str, *, positive: bool = True) -> str:
    try:
        validate_amount(amount, positive=positive, maximum=AMOUNT_MAX)
        return validate_currency(currency) if currency else ""
    except MoneyError as error:
        raise InvalidRequest(str(error), reason="INVALID_AMOUNT", field=error.field) from None


def _processing_error() -> errors.Unavailable:
    return errors.Unavailable(
        "processing_error: the acquirer could not process the request",
        reason="PROCESSING_ERROR",
        retry_after_seconds=PROCESSING_ERROR_RETRY_SECONDS,
    )


class ProviderRuntime:
    """In-process state of one provider: its seeded injector and counters."""

    def __init__(self, profile: model.Profile, latency_scale: float) -> None:
        self.profile = profile
        self.latency_scale = latency_scale
        self.injector = Injector(profile, FailureConfig(), latency_scale)
        self.counters = Counters()


class ProviderService:
    """The use cases, wired to storage, secrets and the clock by bootstrap."""

    def __init__(
        self,
        uow: SqlUnitOfWork,
        *,
        fingerprint_key: str,
        latency_scale: float,
        chargeback_delay_seconds: float,
        settlements_dir: pathlib.Path,
        clock: Clock = utc_now,
    ) -> None:
        self.uow = uow
        self._fingerprint_key = fingerprint_key.encode()
        self.chargeback_delay_seconds = chargeback_delay_seconds
        self.settlements_dir = settlements_dir
        self.clock = clock
        self.runtimes = {name: ProviderRuntime(p, latency_scale) for name, p in model.PROFILES.items()}
        # Set when there is work for the background worker (a webhook or a due chargeback).
        self.work_available = asyncio.Event()

    # Helpers ------------------------------------------------------------------------------

    def runtime(self, provider: str) -> ProviderRuntime:
        """The runtime of a known provider (InvalidArgument otherwise)."""
        with translated():
            return self.runtimes[model.profile(provider).name]

    def fingerprint(self, number: str) -> str:
        """Keyed HMAC of the card number: comparable across calls, useless without the key."""
        return hmac.new(self._fingerprint_key, number.encode(), hashlib.sha256).hexdigest()

    async def _load(self, repo: SqlRepository, provider: str, transaction_id: str) -> Transaction:
        transaction = await repo.get_transaction(transaction_id, for_update=True) if transaction_id else None
        if transaction is None or transaction.provider != provider:
            raise UnknownTransaction(
                "no such transaction at this provider", reason="TRANSACTION_NOT_FOUND", field="transaction_id"
            )
        return transaction

    async def _run(
        self,
        runtime: ProviderRuntime,
        *,
        lookup: Callable[[SqlRepository], Awaitable[T | None]],
        perform: Callable[[SqlRepository, Draw], Awaitable[tuple[T, bool]]],
        may_decline: bool,
        deadline_seconds: float | None,
    ) -> tuple[T, bool]:
        """Replay check, seeded draw, latency, the change; returns (result, replayed).

        `perform` returns (result, hang): hang means the change is recorded but the caller gets
        no answer before its deadline (a timeout).
        """
        with translated():
            try:
                async with self.uow.begin() as repo:
                    found = await lookup(repo)
                    if found is not None:
                        return found, True
                    draw = runtime.injector.draw(may_decline=may_decline)
                    # Without simulated latency the change is applied in the same transaction (the
                    # hot path of every payment); with latency, the sleep happens outside any lock.
                    immediate = await perform(repo, draw) if draw.latency_seconds <= 0 else None
                if immediate is None:
                    await asyncio.sleep(draw.latency_seconds)
                    async with self.uow.begin() as repo:
                        immediate = await perform(repo, draw)
            except IntegrityError:
                # A concurrent call with the same reference won the race: answer its result.
                async with self.uow.begin() as repo:
                    found = await lookup(repo)
                if found is None:
                    raise
                return found, True
        result, hang = immediate
        if hang:
            runtime.counters.timeouts += 1
            await self._hang(deadline_seconds)
        return result, False

    async def _hang(self, deadline_seconds: float | None) -> None:
        wait = TIMEOUT_HANG_SECONDS_MAX
        if deadline_seconds is not None:
            wait = min(deadline_seconds + TIMEOUT_MARGIN_SECONDS, TIMEOUT_HANG_SECONDS_MAX)
        await asyncio.sleep(wait)
        raise errors.DeadlineExceeded("the acquirer did not answer in time", reason="PROVIDER_TIMEOUT")

    # Authorize ----------------------------------------------------------------------------

    async def authorize(
        self, command: commands.Authorize, *, deadline_seconds: float | None = None
    ) -> commands.TransactionResult:
        """Authorize an amount; a repeat of the reference returns the first answer."""
        runtime = self.runtime(command.provider)
        with translated():
            _check_reference(command.reference, "reference")
            currency = _check_money(command.amount, command.currency or "?")
            if not command.merchant_id or len(command.merchant_id) > model.MERCHANT_ID_LENGTH_MAX:
                raise InvalidRequest(
                    "merchant_id must be 1-128 characters", reason="INVALID_MERCHANT", field="merchant_id"
                )
            command.card.validate()
        fingerprint = self.fingerprint(command.card.number)
        test_card = model.card_behaviour(command.card.number)

        async def lookup(repo: SqlRepository) -> Transaction | None:
            existing = await repo.get_transaction_by_reference(command.provider, command.reference)
            if existing is not None and not existing.same_request(
                amount=command.amount,
                currency=currency,
                merchant_id=command.merchant_id,
                card_fingerprint=fingerprint,
            ):
                raise InvalidRequest(
                    "reference was already used for a different authorization",
                    reason="REFERENCE_REUSED",
                    field="reference",
                )
            return existing

        async def perform(repo: SqlRepository, draw: Draw) -> tuple[Transaction, bool]:
            now = self.clock()
            decision = decide(test_card, command.card, draw, runtime.profile, now.date())
            runtime.counters.authorizations += 1
            if decision.outcome is Outcome.ERROR:
                runtime.counters.errors += 1
                raise _processing_error()
            approved = decision.outcome in {Outcome.APPROVE, Outcome.TIMEOUT}
            transaction = Transaction(
                id=ids.new_id("txn"),
                provider=command.provider,
                reference=command.reference,
                merchant_id=command.merchant_id,
                status=Status.AUTHORIZED if approved else Status.DECLINED,
                amount=command.amount,
                currency=currency,
                last4=command.card.last4,
                card_fingerprint=fingerprint,
                created_at=now,
                updated_at=now,
                decline_code=decision.decline_code.value if decision.decline_code else "",
                message=decision.message,
                authorization_code=draw.authorization_code if approved else "",
                behaviour=test_card.behaviour.value
                if test_card.behaviour is CardBehaviour.CHARGEBACK_AFTER_CAPTURE
                else "",
            )
            await repo.add_transaction(transaction)
            if approved:
                runtime.counters.approvals += 1
            else:
                runtime.counters.declines += 1
            return transaction, decision.outcome is Outcome.TIMEOUT

        transaction, replayed = await self._run(
            runtime, lookup=lookup, perform=perform, may_decline=True, deadline_seconds=deadline_seconds
        )
        return commands.TransactionResult(transaction, replayed)

    # Capture ------------------------------------------------------------------------------

    async def capture(
        self, command: commands.Capture, *, deadline_seconds: float | None = None
    ) -> commands.TransactionResult:
        """Capture fully or partly; once, unless the profile allows multi-capture."""
        runtime = self.runtime(command.provider)
        with translated():
            _check_reference(command.reference, "reference", required=False)
            if command.amount:
                _check_money(command.amount, "")
            elif command.amount < 0:
                raise InvalidRequest("amount must not be negative", reason="INVALID_AMOUNT", field="amount")
        # Without a reference the capture is not idempotent; it still needs a unique key.
        reference = command.reference or f"{command.transaction_id}/{ids.new_id('txn')}"

        async def lookup(repo: SqlRepository) -> Transaction | None:
            if not command.reference:
                return None
            first = await repo.get_capture_response(command.provider, reference)
            if first is not None and first.id != command.transaction_id:
                raise InvalidRequest(
                    "reference was already used for another transaction's capture",
                    reason="REFERENCE_REUSED",
                    field="reference",
                )
            return first

        async def perform(repo: SqlRepository, draw: Draw) -> tuple[Transaction, bool]:
            if draw.injected is Injected.ERROR:
                runtime.counters.errors += 1
                raise _processing_error()
            now = self.clock()
            transaction = await self._load(repo, command.provider, command.transaction_id)
            captured = transaction.capture(command.amount, now, multi_capture=runtime.profile.multi_capture)
            if transaction.behaviour == CardBehaviour.CHARGEBACK_AFTER_CAPTURE.value and (
                transaction.chargeback_due_at is None
            ):
                transaction.chargeback_due_at = now + datetime.timedelta(
                    seconds=self.chargeback_delay_seconds
                )
            await repo.update_transaction(transaction)
            await repo.add_capture(command.provider, reference, transaction, captured, now)
            runtime.counters.captures += 1
            return transaction, draw.injected is Injected.TIMEOUT

        transaction, replayed = await self._run(
            runtime, lookup=lookup, perform=perform, may_decline=False, deadline_seconds=deadline_seconds
        )
        if transaction.chargeback_due_at is not None:
            self.work_available.set()
        return commands.TransactionResult(transaction, replayed)

    # Void ---------------------------------------------------------------------------------

    async def void(self, command: commands.Void, *, deadline_seconds: float | None = None) -> Transaction:
        """Void an uncaptured authorization (voiding a voided one changes nothing)."""
        runtime = self.runtime(command.provider)

        async def lookup(_repo: SqlRepository) -> Transaction | None:
            return None

        async def perform(repo: SqlRepository, draw: Draw) -> tuple[Transaction, bool]:
            if draw.injected is Injected.ERROR:
                runtime.counters.errors += 1
                raise _processing_error()
            transaction = await self._load(repo, command.provider, command.transaction_id)
            if transaction.void(self.clock()):
                await repo.update_transaction(transaction)
                runtime.counters.voids += 1
            return transaction, draw.injected is Injected.TIMEOUT

        transaction, _ = await self._run(
            runtime, lookup=lookup, perform=perform, may_decline=False, deadline_seconds=deadline_seconds
        )
        return transaction

    # Refund -------------------------------------------------------------------------------

    async def refund(
        self, command: commands.RefundCommand, *, deadline_seconds: float | None = None
    ) -> commands.RefundResult:
        """Refund part of the captured amount; several refunds never exceed the capture."""
        runtime = self.runtime(command.provider)
        with translated():
            _check_reference(command.reference, "reference")
            _check_money(command.amount, "")

        async def lookup(repo: SqlRepository) -> commands.RefundResult | None:
            found = await repo.get_refund_by_reference(command.provider, command.reference)
            if found is None:
                return None
            refund, transaction = found
            if refund.transaction_id != command.transaction_id or refund.amount != command.amount:
                raise InvalidRequest(
                    "reference was already used for a different refund",
                    reason="REFERENCE_REUSED",
                    field="reference",
                )
            return commands.RefundResult(refund, transaction, replayed=True)

        async def perform(repo: SqlRepository, draw: Draw) -> tuple[commands.RefundResult, bool]:
            if draw.injected is Injected.ERROR:
                runtime.counters.errors += 1
                raise _processing_error()
            now = self.clock()
            transaction = await self._load(repo, command.provider, command.transaction_id)
            transaction.refund(command.amount, now)
            refund = Refund(
                id=ids.new_id("prf"),
                provider=command.provider,
                transaction_id=transaction.id,
                reference=command.reference,
                amount=command.amount,
                currency=transaction.currency,
                created_at=now,
            )
            await repo.update_transaction(transaction)
            await repo.add_refund(refund, transaction)
            runtime.counters.refunds += 1
            return commands.RefundResult(refund, transaction), draw.injected is Injected.TIMEOUT

        result, _ = await self._run(
            runtime, lookup=lookup, perform=perform, may_decline=False, deadline_seconds=deadline_seconds
        )
        return result

    # Lookups ------------------------------------------------------------------------------

    async def get_transaction(
        self, provider: str, transaction_id: str, reference: str
    ) -> commands.TransactionView:
        """A transaction by provider id or by the caller's reference, with its refunds."""
        self.runtime(provider)
        with translated():
            if not transaction_id and not reference:
                raise InvalidRequest(
                    "transaction_id or reference is required", reason="INVALID_REFERENCE", field="reference"
                )
            _check_reference(reference, "reference", required=False)
            async with self.uow.begin() as repo:
                if transaction_id:
                    transaction = await repo.get_transaction(transaction_id)
                else:
                    transaction = await repo.get_transaction_by_reference(provider, reference)
                if transaction is None or transaction.provider != provider:
                    raise UnknownTransaction(
                        "no such transaction at this provider", reason="TRANSACTION_NOT_FOUND"
                    )
                return commands.TransactionView(transaction, await repo.list_refunds(transaction.id))

    # Failure injection and state ----------------------------------------------------------

    def configure_failures(self, provider: str, config: FailureConfig) -> FailureConfig:
        """Replace a provider's failure injection and restart its random sequence from the seed."""
        runtime = self.runtime(provider)
        with translated():
            config.validate()
        runtime.injector = Injector(runtime.profile, config, runtime.latency_scale)
        log.info("failure injection configured", extra={"provider": provider})
        return config

    def state(self, provider: str = "") -> list[ProviderStateView]:
        """Profile, failure configuration and counters of one provider or both."""
        names = [self.runtime(provider).profile.name] if provider else list(self.runtimes)
        return [
            ProviderStateView(
                profile=self.runtimes[name].profile,
                latency_scale=self.runtimes[name].latency_scale,
                failures=self.runtimes[name].injector.config,
                counters=self.runtimes[name].counters,
            )
            for name in names
        ]

    # Settlement ---------------------------------------------------------------------------

    async def settlement_report(self, provider: str, date: str) -> commands.SettlementReportResult:
        """The day's report (captures and refunds of that UTC date), also written under var/."""
        runtime = self.runtime(provider)
        try:
            day = datetime.date.fromisoformat(date)
        except ValueError:
            raise errors.InvalidArgument(
                "date must be YYYY-MM-DD",
                reason="INVALID_DATE",
                field_violations=[errors.FieldViolation("date", "must be YYYY-MM-DD")],
            ) from None
        start = datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.UTC)
        async with self.uow.begin() as repo:
            movements = await repo.movements_between(
                provider, start, start + datetime.timedelta(days=1), self.clock()
            )
        config = runtime.injector.config
        report = build_report(
            movements,
            provider=provider,
            day=day,
            fee_basis_points=runtime.profile.fee_basis_points,
            mismatch_rate=config.settlement_mismatch_rate,
            seed=config.seed,
        )
        text = report.to_csv()
        path = self.settlements_dir / f"{provider}-{day.isoformat()}.csv"
        await asyncio.to_thread(_write_atomically, path, text)
        return commands.SettlementReportResult(report, text, str(path))

    # Chargebacks --------------------------------------------------------------------------

    async def trigger_chargeback(self, command: commands.TriggerChargeback) -> commands.ChargebackResult:
        """Open a chargeback on a captured transaction and queue its webhook."""
        runtime = self.runtime(command.provider)
        reason = command.reason or DEFAULT_CHARGEBACK_REASON
        with translated():
            if len(reason) > REASON_LENGTH_MAX:
                raise InvalidRequest("reason is too long", reason="INVALID_REASON", field="reason")
            if command.amount < 0:
                raise InvalidRequest("amount must not be negative", reason="INVALID_AMOUNT", field="amount")
            async with self.uow.begin() as repo:
                transaction = await self._load(repo, command.provider, command.transaction_id)
                result = await self._open_chargeback(repo, runtime, transaction, command.amount, reason)
        self.work_available.set()
        return result

    async def _open_chargeback(
        self,
        repo: SqlRepository,
        runtime: ProviderRuntime,
        transaction: Transaction,
        amount: int,
        reason: str,
    ) -> commands.ChargebackResult:
        now = self.clock()
        disputed = transaction.open_chargeback(amount, now)
        dispute = Dispute(
            id=ids.new_id("pdp"),
            provider=transaction.provider,
            transaction_id=transaction.id,
            amount=disputed,
            currency=transaction.currency,
            reason=reason,
            status=DisputeStatus.OPEN,
            created_at=now,
        )
        await repo.update_transaction(transaction)
        await repo.add_dispute(dispute)
        event_id = await self._queue_event(repo, runtime, EventType.CHARGEBACK_OPENED, transaction, dispute)
        return commands.ChargebackResult(event_id, dispute)

    async def resolve_chargeback(self, command: commands.ResolveChargeback) -> commands.ChargebackResult:
        """Close a chargeback as won or lost and queue the chargeback.won / .lost webhook."""
        runtime = self.runtime(command.provider)
        with translated():
            async with self.uow.begin() as repo:
                dispute = await repo.get_dispute(command.dispute_id, for_update=True)
                if dispute is None or dispute.provider != command.provider:
                    raise UnknownTransaction(
                        "no such dispute at this provider", reason="DISPUTE_NOT_FOUND", field="dispute_id"
                    )
                now = self.clock()
                dispute.resolve(command.won, now)
                transaction = await self._load(repo, command.provider, dispute.transaction_id)
                transaction.close_chargeback(command.won, now)
                await repo.update_dispute(dispute)
                await repo.update_transaction(transaction)
                event_type = EventType.CHARGEBACK_WON if command.won else EventType.CHARGEBACK_LOST
                event_id = await self._queue_event(repo, runtime, event_type, transaction, dispute)
        self.work_available.set()
        return commands.ChargebackResult(event_id, dispute)

    async def _queue_event(
        self,
        repo: SqlRepository,
        runtime: ProviderRuntime,
        event_type: EventType,
        transaction: Transaction,
        dispute: Dispute,
    ) -> str:
        now = self.clock()
        event_id = ids.new_id("pevt")
        body = chargeback_body(event_id, event_type, transaction, dispute, now)
        copies = 2 if runtime.injector.duplicate_webhook() else 1
        await repo.add_event(
            event_id=event_id,
            provider=transaction.provider,
            type_=event_type.value,
            body=body,
            copies=copies,
            now=now,
        )
        return event_id

    async def open_due_chargebacks(self) -> int:
        """Open the chargebacks of captured chargeback test cards whose delay has passed."""
        opened = 0
        async with self.uow.begin() as repo:
            due = await repo.due_chargebacks(self.clock())
            for transaction in due:
                if transaction.status is not Status.CAPTURED:
                    # Refunded or already disputed meanwhile: the issuer has nothing to charge back.
                    transaction.chargeback_due_at = None
                    await repo.update_transaction(transaction)
                    continue
                runtime = self.runtimes[transaction.provider]
                await self._open_chargeback(repo, runtime, transaction, 0, DEFAULT_CHARGEBACK_REASON)
                opened += 1
        return opened


def _write_atomically(path: pathlib.Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
