"""The ledger's state machine: applies batches of events to an in-memory working set.

The adapters load every account and transfer a batch can touch (with the accounts locked), hand
them to this engine, and write back what it reports in `Changes`. Keeping the rules here, free of
I/O, lets the same code serve the gRPC service and the unit tests, and keeps each database
transaction to a fixed handful of statements however many transfers it carries.

Linked chains are all-or-nothing: before the first event of a chain the engine starts an undo
log, and a failing event rolls the whole chain back before the next chain starts.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence

from chassis import money
from ledger_svc.domain.model import (
    INT64_MAX,
    MICROSECONDS_PER_SECOND,
    TIMEOUT_SECONDS_MAX,
    Account,
    AccountResult,
    AccountType,
    Entry,
    EntryKind,
    EntrySide,
    NewAccount,
    Transfer,
    TransferRequest,
    TransferResult,
    TransferState,
    valid_id,
    valid_metadata,
)


@dataclasses.dataclass
class Changes:
    """What a batch changed, for the adapters to persist in one transaction."""

    new_transfers: list[Transfer] = dataclasses.field(default_factory=list)
    # Existing (already stored) transfers whose state changed (pending lifecycle).
    updated_transfers: dict[str, Transfer] = dataclasses.field(default_factory=dict)
    failures: list[tuple[str, TransferResult]] = dataclasses.field(default_factory=list)
    entries: list[Entry] = dataclasses.field(default_factory=list)
    touched_accounts: dict[str, Account] = dataclasses.field(default_factory=dict)
    new_accounts: list[Account] = dataclasses.field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when nothing needs to be written."""
        return not (self.new_transfers or self.updated_transfers or self.failures or self.new_accounts)


def _chains(linked_flags: Sequence[bool]) -> list[tuple[int, int, bool]]:
    """Split a batch into (first, last, open) chains; an unlinked event is a chain of one."""
    chains: list[tuple[int, int, bool]] = []
    start = 0
    count = len(linked_flags)
    for index, linked in enumerate(linked_flags):
        if not linked:
            chains.append((start, index, False))
            start = index + 1
    if start < count:
        chains.append((start, count - 1, True))
    return chains


def create_accounts(
    requests: Sequence[NewAccount], existing: Mapping[str, Account], now_us: int
) -> tuple[list[AccountResult], list[Account]]:
    """Judge a batch of new accounts against the stored ones; return results and accounts to insert."""
    results = [AccountResult.RESULT_UNSPECIFIED] * len(requests)
    created: dict[str, Account] = {}
    seen: set[str] = set()
    for index, request in enumerate(requests):
        if not valid_id(request.id):
            results[index] = AccountResult.INVALID_ID
        elif request.id in seen:
            results[index] = AccountResult.DUPLICATE_ID_IN_BATCH
        seen.add(request.id)

    def judge(request: NewAccount) -> AccountResult:
        stored = existing.get(request.id) or created.get(request.id)
        if stored is not None:
            return (
                AccountResult.EXISTS
                if stored.same_definition(request)
                else AccountResult.EXISTS_WITH_DIFFERENT_FIELDS
            )
        if request.currency not in money.currencies():
            return AccountResult.INVALID_CURRENCY
        if request.type == AccountType.TYPE_UNSPECIFIED:
            return AccountResult.INVALID_TYPE
        if request.debits_must_not_exceed_credits and request.credits_must_not_exceed_debits:
            return AccountResult.FLAGS_ARE_MUTUALLY_EXCLUSIVE
        if not valid_metadata(request.metadata):
            return AccountResult.INVALID_METADATA
        return AccountResult.OK

    for first, last, is_open in _chains([r.linked for r in requests]):
        if is_open:
            for index in range(first, last + 1):
                if results[index] == AccountResult.RESULT_UNSPECIFIED:
                    results[index] = AccountResult.LINKED_EVENT_FAILED
            results[last] = AccountResult.LINKED_EVENT_CHAIN_OPEN
            continue
        chain_created: list[str] = []
        broken = False
        for index in range(first, last + 1):
            request = requests[index]
            result = results[index] if results[index] != AccountResult.RESULT_UNSPECIFIED else judge(request)
            results[index] = result
            if result == AccountResult.OK:
                created[request.id] = Account(
                    id=request.id,
                    currency=request.currency,
                    type=request.type,
                    code=request.code,
                    debits_must_not_exceed_credits=request.debits_must_not_exceed_credits,
                    credits_must_not_exceed_debits=request.credits_must_not_exceed_debits,
                    metadata=dict(request.metadata),
                    created_at_us=now_us,
                )
                chain_created.append(request.id)
            elif result != AccountResult.EXISTS:
                broken = True
                failed_at = index
                break
        if broken and first != last:
            for account_id in chain_created:
                del created[account_id]
            for index in range(first, last + 1):
                if index != failed_at:
                    results[index] = AccountResult.LINKED_EVENT_FAILED
    return results, list(created.values())


class TransferEngine:
    """Applies transfer batches to a working set of accounts and transfers, in order."""

    def __init__(
        self,
        accounts: Mapping[str, Account],
        transfers: Mapping[str, Transfer],
        failed_ids: Mapping[str, TransferResult],
        now_us: int,
    ) -> None:
        self._accounts = dict(accounts)
        self._stored_transfers = dict(transfers)
        self._transfers: dict[str, Transfer] = dict(transfers)
        self._failed = dict(failed_ids)
        self._now_us = now_us
        self.changes = Changes()
        # Undo log of the chain being applied (None outside a linked chain).
        self._undo: list[Callable[[], None]] | None = None

    # -- batches -------------------------------------------------------------------------------

    def apply(self, batch: Sequence[TransferRequest]) -> list[TransferResult]:
        """Apply one request's transfers in order; return one result per transfer."""
        results = [TransferResult.RESULT_UNSPECIFIED] * len(batch)
        seen: set[str] = set()
        for index, request in enumerate(batch):
            if not valid_id(request.id):
                results[index] = TransferResult.INVALID_ID
            elif request.id in seen:
                results[index] = TransferResult.DUPLICATE_ID_IN_BATCH
            seen.add(request.id)
        for first, last, is_open in _chains([r.linked for r in batch]):
            if is_open:
                for index in range(first, last + 1):
                    if results[index] == TransferResult.RESULT_UNSPECIFIED:
                        results[index] = TransferResult.LINKED_EVENT_FAILED
                results[last] = TransferResult.LINKED_EVENT_CHAIN_OPEN
                continue
            if first == last:
                if results[first] == TransferResult.RESULT_UNSPECIFIED:
                    results[first] = self._apply_one(batch[first])
                self._record_failure(batch[first], results[first])
                continue
            self._apply_chain(batch, results, first, last)
        return results

    def _apply_chain(
        self, batch: Sequence[TransferRequest], results: list[TransferResult], first: int, last: int
    ) -> None:
        self._undo = []
        mark_entries = len(self.changes.entries)
        mark_transfers = len(self.changes.new_transfers)
        failed_at = -1
        for index in range(first, last + 1):
            if results[index] == TransferResult.RESULT_UNSPECIFIED:
                results[index] = self._apply_one(batch[index])
            if not results[index].succeeded:
                failed_at = index
                break
        undo, self._undo = self._undo, None
        if failed_at < 0:
            return
        for step in reversed(undo):
            step()
        del self.changes.entries[mark_entries:]
        for transfer in self.changes.new_transfers[mark_transfers:]:
            del self._transfers[transfer.id]
        del self.changes.new_transfers[mark_transfers:]
        for index in range(first, last + 1):
            if index != failed_at:
                results[index] = TransferResult.LINKED_EVENT_FAILED
        self._record_failure(batch[failed_at], results[failed_at])

    def _record_failure(self, request: TransferRequest, result: TransferResult) -> None:
        if result.burns_id and request.id not in self._failed:
            self._failed[request.id] = result
            self.changes.failures.append((request.id, result))

    # -- one transfer --------------------------------------------------------------------------

    def _apply_one(self, request: TransferRequest) -> TransferResult:
        stored = self._transfers.get(request.id)
        if stored is not None:
            return (
                TransferResult.EXISTS
                if stored.matches(request)
                else TransferResult.EXISTS_WITH_DIFFERENT_FIELDS
            )
        if request.id in self._failed:
            return TransferResult.ID_ALREADY_FAILED
        invalid = _validate(request)
        if invalid is not None:
            return invalid
        if request.resolves_pending:
            return self._resolve(request)
        debit = self._accounts.get(request.debit_account_id)
        if debit is None:
            return TransferResult.DEBIT_ACCOUNT_NOT_FOUND
        credit = self._accounts.get(request.credit_account_id)
        if credit is None:
            return TransferResult.CREDIT_ACCOUNT_NOT_FOUND
        if debit.currency != credit.currency or request.currency not in ("", debit.currency):
            return TransferResult.CURRENCY_MISMATCH
        amount = request.amount
        if (
            debit.debits_posted + debit.debits_pending + amount > INT64_MAX
            or credit.credits_posted + credit.credits_pending + amount > INT64_MAX
        ):
            return TransferResult.OVERFLOW
        # Pending amounts count pessimistically: a reservation already uses up the headroom.
        if (
            debit.debits_must_not_exceed_credits
            and debit.debits_posted + debit.debits_pending + amount > debit.credits_posted
        ):
            return TransferResult.EXCEEDS_CREDITS
        if (
            credit.credits_must_not_exceed_debits
            and credit.credits_posted + credit.credits_pending + amount > credit.debits_posted
        ):
            return TransferResult.EXCEEDS_DEBITS
        kind = EntryKind.PENDING if request.pending else EntryKind.POSTED
        self._move(request.id, debit, credit, amount, kind)
        expires_at_us = (
            self._now_us + request.timeout_seconds * MICROSECONDS_PER_SECOND
            if request.pending and request.timeout_seconds
            else 0
        )
        self._add_transfer(
            request,
            debit_account_id=debit.id,
            credit_account_id=credit.id,
            amount=amount,
            currency=debit.currency,
            state=TransferState.PENDING if request.pending else TransferState.POSTED,
            expires_at_us=expires_at_us,
        )
        return TransferResult.OK

    def _resolve(self, request: TransferRequest) -> TransferResult:
        pending = self._transfers.get(request.pending_id)
        if pending is None:
            return TransferResult.PENDING_TRANSFER_NOT_FOUND
        if not pending.pending:
            return TransferResult.PENDING_TRANSFER_NOT_PENDING
        state_result = {
            TransferState.PENDING_POSTED: TransferResult.PENDING_TRANSFER_ALREADY_POSTED,
            TransferState.PENDING_VOIDED: TransferResult.PENDING_TRANSFER_ALREADY_VOIDED,
            TransferState.PENDING_EXPIRED: TransferResult.PENDING_TRANSFER_EXPIRED,
        }.get(pending.state)
        if state_result is not None:
            return state_result
        if self.is_expired(pending):
            # Expired but not yet released by the worker: refused the same way; the release
            # itself is written by ExpirePendingTransfers so it appears once in the history.
            return TransferResult.PENDING_TRANSFER_EXPIRED
        if request.debit_account_id not in (
            "",
            pending.debit_account_id,
        ) or request.credit_account_id not in (
            "",
            pending.credit_account_id,
        ):
            return TransferResult.PENDING_TRANSFER_HAS_DIFFERENT_ACCOUNTS
        if request.currency not in ("", pending.currency):
            return TransferResult.CURRENCY_MISMATCH
        if request.amount > pending.amount:
            return TransferResult.AMOUNT_EXCEEDS_PENDING_AMOUNT
        debit = self._accounts[pending.debit_account_id]
        credit = self._accounts[pending.credit_account_id]
        posted = request.amount or pending.amount
        if request.post_pending_transfer and (
            debit.debits_posted + posted > INT64_MAX or credit.credits_posted + posted > INT64_MAX
        ):
            return TransferResult.OVERFLOW
        self._move(pending.id, debit, credit, pending.amount, EntryKind.RELEASED)
        if request.post_pending_transfer:
            self._move(request.id, debit, credit, posted, EntryKind.POSTED)
            self._set_state(pending, TransferState.PENDING_POSTED, posted)
        else:
            self._set_state(pending, TransferState.PENDING_VOIDED, 0)
        self._add_transfer(
            request,
            debit_account_id=debit.id,
            credit_account_id=credit.id,
            amount=posted if request.post_pending_transfer else pending.amount,
            currency=pending.currency,
            state=TransferState.POSTED if request.post_pending_transfer else TransferState.VOID,
            expires_at_us=0,
        )
        return TransferResult.OK

    # -- expiry --------------------------------------------------------------------------------

    def is_expired(self, transfer: Transfer) -> bool:
        """True when a still-pending transfer's timeout has passed."""
        return (
            transfer.state == TransferState.PENDING
            and transfer.expires_at_us != 0
            and transfer.expires_at_us <= self._now_us
        )

    def expire(self, transfer_ids: Sequence[str]) -> list[str]:
        """Release every named pending transfer whose timeout passed; return those released."""
        released: list[str] = []
        for transfer_id in transfer_ids:
            transfer = self._transfers.get(transfer_id)
            if transfer is None or not self.is_expired(transfer):
                continue
            debit = self._accounts[transfer.debit_account_id]
            credit = self._accounts[transfer.credit_account_id]
            self._move(transfer.id, debit, credit, transfer.amount, EntryKind.RELEASED)
            self._set_state(transfer, TransferState.PENDING_EXPIRED, 0)
            released.append(transfer.id)
        return released

    # -- mutations (each one undoable inside a chain) ------------------------------------------

    def _move(self, transfer_id: str, debit: Account, credit: Account, amount: int, kind: EntryKind) -> None:
        for account, side in ((debit, EntrySide.DEBIT), (credit, EntrySide.CREDIT)):
            before = (
                account.debits_posted,
                account.credits_posted,
                account.debits_pending,
                account.credits_pending,
            )
            if self._undo is not None:
                self._undo.append(functools.partial(_restore, account, before))
            signed = -amount if kind == EntryKind.RELEASED else amount
            if side == EntrySide.DEBIT:
                if kind == EntryKind.POSTED:
                    account.debits_posted += amount
                else:
                    account.debits_pending += signed
            elif kind == EntryKind.POSTED:
                account.credits_posted += amount
            else:
                account.credits_pending += signed
            self.changes.touched_accounts[account.id] = account
            self.changes.entries.append(
                Entry(transfer_id, account.id, side, kind, amount, balance_after=account.balance)
            )

    def _set_state(self, transfer: Transfer, state: TransferState, amount_posted: int) -> None:
        before_state, before_posted = transfer.state, transfer.amount_posted
        if self._undo is not None:
            self._undo.append(lambda: _restore_state(transfer, before_state, before_posted))
        transfer.state = state
        transfer.amount_posted = amount_posted
        if transfer.id in self._stored_transfers:
            self.changes.updated_transfers[transfer.id] = transfer

    def _add_transfer(
        self,
        request: TransferRequest,
        *,
        debit_account_id: str,
        credit_account_id: str,
        amount: int,
        currency: str,
        state: TransferState,
        expires_at_us: int,
    ) -> None:
        transfer = Transfer(
            id=request.id,
            debit_account_id=debit_account_id,
            credit_account_id=credit_account_id,
            amount=amount,
            currency=currency,
            code=request.code,
            linked=request.linked,
            pending=request.pending,
            post_pending_transfer=request.post_pending_transfer,
            void_pending_transfer=request.void_pending_transfer,
            pending_id=request.pending_id,
            timeout_seconds=request.timeout_seconds,
            metadata=dict(request.metadata),
            state=state,
            created_at_us=self._now_us,
            expires_at_us=expires_at_us,
        )
        self._transfers[transfer.id] = transfer
        self.changes.new_transfers.append(transfer)


def _restore(account: Account, balances: tuple[int, int, int, int]) -> None:
    (
        account.debits_posted,
        account.credits_posted,
        account.debits_pending,
        account.credits_pending,
    ) = balances


def _restore_state(transfer: Transfer, state: TransferState, amount_posted: int) -> None:
    transfer.state = state
    transfer.amount_posted = amount_posted


def _validate(request: TransferRequest) -> TransferResult | None:
    """What can be judged from the request alone, in a fixed order."""
    kinds = int(request.pending) + int(request.post_pending_transfer) + int(request.void_pending_transfer)
    if kinds > 1:
        return TransferResult.FLAGS_ARE_MUTUALLY_EXCLUSIVE
    if not valid_metadata(request.metadata):
        return TransferResult.INVALID_METADATA
    if request.resolves_pending:
        if not request.pending_id:
            return TransferResult.PENDING_ID_REQUIRED
        if request.timeout_seconds != 0:
            return TransferResult.INVALID_TIMEOUT
        if request.amount < 0:
            return TransferResult.AMOUNT_MUST_BE_POSITIVE
        if request.debit_account_id and request.debit_account_id == request.credit_account_id:
            return TransferResult.ACCOUNTS_MUST_BE_DIFFERENT
        return None
    if request.pending_id:
        return TransferResult.PENDING_ID_MUST_BE_EMPTY
    if (
        request.timeout_seconds < 0
        or request.timeout_seconds > TIMEOUT_SECONDS_MAX
        or (request.timeout_seconds and not request.pending)
    ):
        return TransferResult.INVALID_TIMEOUT
    if request.debit_account_id and request.debit_account_id == request.credit_account_id:
        return TransferResult.ACCOUNTS_MUST_BE_DIFFERENT
    if request.amount <= 0:
        return TransferResult.AMOUNT_MUST_BE_POSITIVE
    return None
