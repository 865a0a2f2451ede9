"""Ledger vocabulary: accounts, transfers, entries, and the result of every refused event.

Everything here is plain data. The rules that move money live in `engine.py`; this module only
names things, bounds them, and validates what can be judged from a request alone.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping

INT64_MAX = 2**63 - 1
# Largest batch a single CreateAccounts / CreateTransfers / lookup call may carry.
BATCH_SIZE_MAX = 1_000
ID_LENGTH_MAX = 128
METADATA_PAIRS_MAX = 16
METADATA_KEY_LENGTH_MAX = 40
METADATA_VALUE_LENGTH_MAX = 500
# A pending transfer may reserve money for at most ten years; beyond that it is a mistake.
TIMEOUT_SECONDS_MAX = 10 * 366 * 24 * 3600
MICROSECONDS_PER_SECOND = 1_000_000
_PRINTABLE_LOW, _PRINTABLE_HIGH = 0x21, 0x7E


class AccountType(enum.IntEnum):
    """Decides the account's normal side (ASSET and EXPENSE are debit-normal)."""

    TYPE_UNSPECIFIED = 0
    ASSET = 1
    LIABILITY = 2
    EQUITY = 3
    REVENUE = 4
    EXPENSE = 5

    @property
    def debit_normal(self) -> bool:
        """True when the balance is debits minus credits."""
        return self in (AccountType.ASSET, AccountType.EXPENSE)


class AccountResult(enum.IntEnum):
    """Outcome of one account of a CreateAccounts batch (numbers match the contract)."""

    RESULT_UNSPECIFIED = 0
    OK = 1
    EXISTS = 2
    EXISTS_WITH_DIFFERENT_FIELDS = 3
    INVALID_ID = 4
    INVALID_CURRENCY = 5
    INVALID_TYPE = 6
    FLAGS_ARE_MUTUALLY_EXCLUSIVE = 7
    LINKED_EVENT_FAILED = 8
    LINKED_EVENT_CHAIN_OPEN = 9
    DUPLICATE_ID_IN_BATCH = 10
    INVALID_METADATA = 11


class TransferResult(enum.IntEnum):
    """Outcome of one transfer of a CreateTransfers batch (numbers match the contract)."""

    RESULT_UNSPECIFIED = 0
    OK = 1
    EXISTS = 2
    EXISTS_WITH_DIFFERENT_FIELDS = 3
    ID_ALREADY_FAILED = 4
    INVALID_ID = 5
    DEBIT_ACCOUNT_NOT_FOUND = 6
    CREDIT_ACCOUNT_NOT_FOUND = 7
    ACCOUNTS_MUST_BE_DIFFERENT = 8
    CURRENCY_MISMATCH = 9
    AMOUNT_MUST_BE_POSITIVE = 10
    EXCEEDS_CREDITS = 11
    EXCEEDS_DEBITS = 12
    FLAGS_ARE_MUTUALLY_EXCLUSIVE = 13
    PENDING_ID_REQUIRED = 14
    PENDING_ID_MUST_BE_EMPTY = 15
    PENDING_TRANSFER_NOT_FOUND = 16
    PENDING_TRANSFER_NOT_PENDING = 17
    PENDING_TRANSFER_ALREADY_POSTED = 18
    PENDING_TRANSFER_ALREADY_VOIDED = 19
    PENDING_TRANSFER_EXPIRED = 20
    AMOUNT_EXCEEDS_PENDING_AMOUNT = 21
    PENDING_TRANSFER_HAS_DIFFERENT_ACCOUNTS = 22
    INVALID_TIMEOUT = 23
    LINKED_EVENT_FAILED = 24
    LINKED_EVENT_CHAIN_OPEN = 25
    DUPLICATE_ID_IN_BATCH = 26
    OVERFLOW = 27
    INVALID_METADATA = 28

    @property
    def succeeded(self) -> bool:
        """True when the transfer is (now, or already was) committed."""
        return self in (TransferResult.OK, TransferResult.EXISTS)

    @property
    def burns_id(self) -> bool:
        """True when the refusal is recorded so the id stays failed forever.

        Refusals that are about the request's shape inside its batch (bad id, duplicate in the
        batch, a chain broken by another event) are not recorded: the id was never judged.
        """
        return self not in _NOT_RECORDED


_NOT_RECORDED = frozenset(
    {
        TransferResult.RESULT_UNSPECIFIED,
        TransferResult.OK,
        TransferResult.EXISTS,
        TransferResult.EXISTS_WITH_DIFFERENT_FIELDS,
        TransferResult.ID_ALREADY_FAILED,
        TransferResult.INVALID_ID,
        TransferResult.DUPLICATE_ID_IN_BATCH,
        TransferResult.LINKED_EVENT_FAILED,
        TransferResult.LINKED_EVENT_CHAIN_OPEN,
    }
)


class TransferState(enum.IntEnum):
    """Lifecycle state of a stored transfer (numbers match the contract)."""

    STATE_UNSPECIFIED = 0
    POSTED = 1
    PENDING = 2
    PENDING_POSTED = 3
    PENDING_VOIDED = 4
    PENDING_EXPIRED = 5
    VOID = 6


class EntrySide(enum.IntEnum):
    """Which side of the account an entry touches."""

    SIDE_UNSPECIFIED = 0
    DEBIT = 1
    CREDIT = 2


class EntryKind(enum.IntEnum):
    """Posted amount, reservation, or release of a reservation."""

    KIND_UNSPECIFIED = 0
    POSTED = 1
    PENDING = 2
    RELEASED = 3


@dataclasses.dataclass(frozen=True, slots=True)
class NewAccount:
    """An account as a caller asks for it."""

    id: str
    currency: str
    type: AccountType
    code: int = 0
    debits_must_not_exceed_credits: bool = False
    credits_must_not_exceed_debits: bool = False
    linked: bool = False
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(slots=True)
class Account:
    """A stored account with its running sums (mutable inside one batch only)."""

    id: str
    currency: str
    type: AccountType
    code: int
    debits_must_not_exceed_credits: bool
    credits_must_not_exceed_debits: bool
    metadata: dict[str, str]
    created_at_us: int
    debits_posted: int = 0
    credits_posted: int = 0
    debits_pending: int = 0
    credits_pending: int = 0

    @property
    def balance(self) -> int:
        """Posted balance on the account's normal side."""
        if self.type.debit_normal:
            return self.debits_posted - self.credits_posted
        return self.credits_posted - self.debits_posted

    @property
    def pending_balance(self) -> int:
        """Pending balance on the account's normal side."""
        if self.type.debit_normal:
            return self.debits_pending - self.credits_pending
        return self.credits_pending - self.debits_pending

    def same_definition(self, other: NewAccount) -> bool:
        """True when `other` asks for exactly this account (an idempotent repeat)."""
        return (
            self.currency == other.currency
            and self.type == other.type
            and self.code == other.code
            and self.debits_must_not_exceed_credits == other.debits_must_not_exceed_credits
            and self.credits_must_not_exceed_debits == other.credits_must_not_exceed_debits
            and self.metadata == dict(other.metadata)
        )


@dataclasses.dataclass(frozen=True, slots=True)
class TransferRequest:
    """A transfer as a caller sends it (fields the ledger fills in may be empty)."""

    id: str
    debit_account_id: str = ""
    credit_account_id: str = ""
    amount: int = 0
    currency: str = ""
    code: int = 0
    linked: bool = False
    pending: bool = False
    post_pending_transfer: bool = False
    void_pending_transfer: bool = False
    pending_id: str = ""
    timeout_seconds: int = 0
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def resolves_pending(self) -> bool:
        """True for a post or a void of a pending transfer."""
        return self.post_pending_transfer or self.void_pending_transfer


@dataclasses.dataclass(slots=True)
class Transfer:
    """A committed transfer. Only `state` and `amount_posted` ever change (pending lifecycle)."""

    id: str
    debit_account_id: str
    credit_account_id: str
    amount: int
    currency: str
    code: int
    linked: bool
    pending: bool
    post_pending_transfer: bool
    void_pending_transfer: bool
    pending_id: str
    timeout_seconds: int
    metadata: dict[str, str]
    state: TransferState
    created_at_us: int
    # Microseconds since the epoch after which a pending transfer expires; 0 = never.
    expires_at_us: int = 0
    amount_posted: int = 0

    def matches(self, request: TransferRequest) -> bool:
        """True when `request` repeats this transfer (fields the ledger filled may be empty)."""
        return (
            request.debit_account_id in ("", self.debit_account_id)
            and request.credit_account_id in ("", self.credit_account_id)
            and (request.amount == self.amount or (request.amount == 0 and self.resolves_pending))
            and request.currency in ("", self.currency)
            and request.code == self.code
            and request.linked == self.linked
            and request.pending == self.pending
            and request.post_pending_transfer == self.post_pending_transfer
            and request.void_pending_transfer == self.void_pending_transfer
            and request.pending_id == self.pending_id
            and request.timeout_seconds == self.timeout_seconds
            and dict(request.metadata) == self.metadata
        )

    @property
    def resolves_pending(self) -> bool:
        """True for a post or a void."""
        return self.post_pending_transfer or self.void_pending_transfer

    @property
    def flags_bits(self) -> int:
        """The four flags packed into an int (storage and hashing)."""
        return (
            int(self.linked)
            | int(self.pending) << 1
            | int(self.post_pending_transfer) << 2
            | int(self.void_pending_transfer) << 3
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """One side of a movement on one account, with the posted balance after it."""

    transfer_id: str
    account_id: str
    side: EntrySide
    kind: EntryKind
    amount: int
    balance_after: int


def valid_id(value: str) -> bool:
    """Ids are 1-128 printable ASCII characters without spaces."""
    return 0 < len(value) <= ID_LENGTH_MAX and all(
        _PRINTABLE_LOW <= ord(char) <= _PRINTABLE_HIGH for char in value
    )


def valid_metadata(metadata: Mapping[str, str]) -> bool:
    """At most 16 pairs, non-empty keys up to 40 characters, values up to 500."""
    return len(metadata) <= METADATA_PAIRS_MAX and all(
        0 < len(key) <= METADATA_KEY_LENGTH_MAX and len(value) <= METADATA_VALUE_LENGTH_MAX
        for key, value in metadata.items()
    )
