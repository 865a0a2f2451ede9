"""The chart of accounts and the transfer ids payments uses in the ledger. Pure.

Per merchant and currency: provider receivable (asset), merchant pending, available and reserved
(liabilities). Per currency: platform fee revenue and platform cash. Transfer ids derive from the
payment intent, so every retry of a step is exactly-once at the ledger.

| step | transfer | debit → credit |
| --- | --- | --- |
| authorize | `<pi>:auth`, pending | provider receivable → merchant pending |
| capture | `<pi>:capture`, post of `<pi>:auth` (partial allowed; the rest is released) | (same) |
| fee | `<pi>:fee`, posted with the capture | merchant pending → platform fee revenue |
| cancel | `<pi>:void`, void of `<pi>:auth` | (same) |
"""

from __future__ import annotations

import dataclasses
import enum


class AccountRole(enum.IntEnum):
    """Chart-of-accounts role, stored as the ledger account's `code`."""

    PROVIDER_RECEIVABLE = 1
    MERCHANT_PENDING = 2
    MERCHANT_AVAILABLE = 3
    MERCHANT_RESERVED = 4
    PLATFORM_FEE_REVENUE = 10
    PLATFORM_CASH = 11


class AccountType(enum.StrEnum):
    """The ledger's account types (its Account.Type names)."""

    ASSET = "ASSET"
    LIABILITY = "LIABILITY"
    REVENUE = "REVENUE"


class TransferCode(enum.IntEnum):
    """Reason code of a transfer, stored as the ledger transfer's `code`."""

    AUTHORIZATION = 1
    CAPTURE = 2
    FEE = 3
    VOID = 4
    # Part 2 (see domain/postings.py).
    REFUND = 5
    DISPUTE = 6
    DISPUTE_FEE = 7
    DISPUTE_REVERSAL = 8
    DISPUTE_LOSS = 9
    SETTLEMENT = 10
    SETTLEMENT_CASH = 11
    PAYOUT = 12


@dataclasses.dataclass(frozen=True, slots=True)
class AccountSpec:
    """An account to create on demand."""

    id: str
    currency: str
    type: AccountType
    role: AccountRole
    merchant_id: str = ""


MERCHANT_ROLES = {
    AccountRole.PROVIDER_RECEIVABLE: ("provider_receivable", AccountType.ASSET),
    AccountRole.MERCHANT_PENDING: ("pending", AccountType.LIABILITY),
    AccountRole.MERCHANT_AVAILABLE: ("available", AccountType.LIABILITY),
    AccountRole.MERCHANT_RESERVED: ("reserved", AccountType.LIABILITY),
}
PLATFORM_ROLES = {
    AccountRole.PLATFORM_FEE_REVENUE: ("fee_revenue", AccountType.REVENUE),
    AccountRole.PLATFORM_CASH: ("cash", AccountType.ASSET),
}


def merchant_account(merchant_id: str, currency: str, role: AccountRole) -> str:
    """Id of a merchant's account, e.g. `mch_…:USD:pending`."""
    return f"{merchant_id}:{currency}:{MERCHANT_ROLES[role][0]}"


def platform_account(currency: str, role: AccountRole) -> str:
    """Id of a platform account, e.g. `platform:USD:fee_revenue`."""
    return f"platform:{currency}:{PLATFORM_ROLES[role][0]}"


def chart(merchant_id: str, currency: str) -> list[AccountSpec]:
    """Every account a merchant's payments in `currency` touch (created idempotently)."""
    specs = [
        AccountSpec(merchant_account(merchant_id, currency, role), currency, kind, role, merchant_id)
        for role, (_, kind) in MERCHANT_ROLES.items()
    ]
    specs.extend(
        AccountSpec(platform_account(currency, role), currency, kind, role)
        for role, (_, kind) in PLATFORM_ROLES.items()
    )
    return specs


def authorization_id(intent_id: str) -> str:
    """The pending transfer of an intent's authorization."""
    return f"{intent_id}:auth"


def capture_id(intent_id: str) -> str:
    """The post of the authorization."""
    return f"{intent_id}:capture"


def fee_id(intent_id: str) -> str:
    """The platform fee recognized at capture."""
    return f"{intent_id}:fee"


def void_id(intent_id: str) -> str:
    """The void of the authorization."""
    return f"{intent_id}:void"


@dataclasses.dataclass(frozen=True, slots=True)
class TransferSpec:
    """One ledger transfer payments asks for (ids deterministic, so retries are exactly-once)."""

    id: str
    amount: int
    currency: str
    code: TransferCode
    debit_account_id: str = ""
    credit_account_id: str = ""
    pending: bool = False
    post_pending: bool = False
    void_pending: bool = False
    pending_id: str = ""
    linked: bool = False
    source: str = ""
    # Balance-transaction type shown to the merchant ("charge", "fee", …).
    kind: str = ""


def authorization_transfer(merchant_id: str, intent_id: str, amount: int, currency: str) -> TransferSpec:
    """Pending transfer reserving an authorization: provider receivable → merchant pending."""
    return TransferSpec(
        id=authorization_id(intent_id),
        amount=amount,
        currency=currency,
        code=TransferCode.AUTHORIZATION,
        debit_account_id=merchant_account(merchant_id, currency, AccountRole.PROVIDER_RECEIVABLE),
        credit_account_id=merchant_account(merchant_id, currency, AccountRole.MERCHANT_PENDING),
        pending=True,
        source=intent_id,
        kind="charge",
    )


def capture_transfers(
    merchant_id: str, intent_id: str, amount: int, fee: int, currency: str
) -> list[TransferSpec]:
    """Post of the authorization (the rest is released) and the fee, linked: both or neither."""
    post = TransferSpec(
        id=capture_id(intent_id),
        amount=amount,
        currency=currency,
        code=TransferCode.CAPTURE,
        # Accounts are taken from the pending transfer.
        post_pending=True,
        pending_id=authorization_id(intent_id),
        linked=fee > 0,
        source=intent_id,
        kind="charge",
    )
    if fee <= 0:
        return [post]
    fee_transfer = TransferSpec(
        id=fee_id(intent_id),
        amount=fee,
        currency=currency,
        code=TransferCode.FEE,
        debit_account_id=merchant_account(merchant_id, currency, AccountRole.MERCHANT_PENDING),
        credit_account_id=platform_account(currency, AccountRole.PLATFORM_FEE_REVENUE),
        source=intent_id,
        kind="fee",
    )
    return [post, fee_transfer]


def void_transfer(intent_id: str, amount: int, currency: str) -> TransferSpec:
    """Void of the authorization, releasing all of it."""
    return TransferSpec(
        id=void_id(intent_id),
        amount=amount,
        currency=currency,
        code=TransferCode.VOID,
        void_pending=True,
        pending_id=authorization_id(intent_id),
        source=intent_id,
        kind="charge",
    )
