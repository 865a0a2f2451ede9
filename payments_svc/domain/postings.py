"""Ledger postings of refunds, disputes, settlement and payouts. Pure.

Refunds and disputes always move the merchant's *available* balance (it may go negative, and
later settlements recover the deficit, DESIGN.md §3), so the pending balance of a payment is
exactly its captured amount minus its fee until settlement moves it.

| step | transfer id | debit → credit |
| --- | --- | --- |
| refund succeeded | `<re>:refund` | merchant available → provider receivable |
| dispute opened | `<dp>:withdraw`, `<dp>:fee` | available → reserved; available → platform fee revenue |
| dispute won | `<dp>:reinstate` | reserved → available |
| dispute lost | `<dp>:loss` | reserved → provider receivable (the provider took the money back) |
| settlement | `<stl>:release` | pending → available (net of fees) |
| settlement | `<stl>:cash` | platform cash → provider receivable (gross) |
| payout | `<po>:payout` pending, then post (paid) or void (failed) | available → platform cash |
"""

from __future__ import annotations

from payments_svc.domain.ledger import (
    AccountRole,
    TransferCode,
    TransferSpec,
    merchant_account,
    platform_account,
)


def _account(merchant_id: str, currency: str, role: AccountRole) -> str:
    return merchant_account(merchant_id, currency, role)


def refund_transfers(
    merchant_id: str, refund_id: str, intent_id: str, amount: int, currency: str
) -> list[TransferSpec]:
    """A succeeded refund: available → provider receivable."""
    return [
        TransferSpec(
            id=f"{refund_id}:refund",
            amount=amount,
            currency=currency,
            code=TransferCode.REFUND,
            debit_account_id=_account(merchant_id, currency, AccountRole.MERCHANT_AVAILABLE),
            credit_account_id=_account(merchant_id, currency, AccountRole.PROVIDER_RECEIVABLE),
            source=refund_id,
            kind="refund",
        )
    ]


def dispute_open_transfers(
    merchant_id: str, dispute_id: str, amount: int, fee: int, currency: str
) -> list[TransferSpec]:
    """Withdraw the disputed amount into reserve and charge the dispute fee (linked)."""
    withdraw = TransferSpec(
        id=f"{dispute_id}:withdraw",
        amount=amount,
        currency=currency,
        code=TransferCode.DISPUTE,
        debit_account_id=_account(merchant_id, currency, AccountRole.MERCHANT_AVAILABLE),
        credit_account_id=_account(merchant_id, currency, AccountRole.MERCHANT_RESERVED),
        linked=fee > 0,
        source=dispute_id,
        kind="dispute",
    )
    if fee <= 0:
        return [withdraw]
    charge = TransferSpec(
        id=f"{dispute_id}:fee",
        amount=fee,
        currency=currency,
        code=TransferCode.DISPUTE_FEE,
        debit_account_id=_account(merchant_id, currency, AccountRole.MERCHANT_AVAILABLE),
        credit_account_id=platform_account(currency, AccountRole.PLATFORM_FEE_REVENUE),
        source=dispute_id,
        kind="dispute_fee",
    )
    return [withdraw, charge]


def dispute_won_transfers(
    merchant_id: str, dispute_id: str, amount: int, currency: str
) -> list[TransferSpec]:
    """Reinstate the reserved amount (the fee stays charged)."""
    return [
        TransferSpec(
            id=f"{dispute_id}:reinstate",
            amount=amount,
            currency=currency,
            code=TransferCode.DISPUTE_REVERSAL,
            debit_account_id=_account(merchant_id, currency, AccountRole.MERCHANT_RESERVED),
            credit_account_id=_account(merchant_id, currency, AccountRole.MERCHANT_AVAILABLE),
            source=dispute_id,
            kind="dispute_reversal",
        )
    ]


def dispute_lost_transfers(
    merchant_id: str, dispute_id: str, amount: int, currency: str
) -> list[TransferSpec]:
    """The reserve goes back to the cardholder through the provider."""
    return [
        TransferSpec(
            id=f"{dispute_id}:loss",
            amount=amount,
            currency=currency,
            code=TransferCode.DISPUTE_LOSS,
            debit_account_id=_account(merchant_id, currency, AccountRole.MERCHANT_RESERVED),
            credit_account_id=_account(merchant_id, currency, AccountRole.PROVIDER_RECEIVABLE),
            source=dispute_id,
            kind="dispute",
        )
    ]


def settlement_transfers(
    merchant_id: str, settlement_id: str, gross: int, net: int, currency: str
) -> list[TransferSpec]:
    """Pending → available (net of fees) and provider receivable → platform cash (gross)."""
    transfers: list[TransferSpec] = []
    if net > 0:
        transfers.append(
            TransferSpec(
                id=f"{settlement_id}:release",
                amount=net,
                currency=currency,
                code=TransferCode.SETTLEMENT,
                debit_account_id=_account(merchant_id, currency, AccountRole.MERCHANT_PENDING),
                credit_account_id=_account(merchant_id, currency, AccountRole.MERCHANT_AVAILABLE),
                source=settlement_id,
                kind="settlement",
            )
        )
    if gross > 0:
        transfers.append(
            TransferSpec(
                id=f"{settlement_id}:cash",
                amount=gross,
                currency=currency,
                code=TransferCode.SETTLEMENT_CASH,
                debit_account_id=platform_account(currency, AccountRole.PLATFORM_CASH),
                credit_account_id=_account(merchant_id, currency, AccountRole.PROVIDER_RECEIVABLE),
                source=settlement_id,
                kind="settlement",
            )
        )
    return transfers


def payout_id(payout: str) -> str:
    """The pending transfer of a payout."""
    return f"{payout}:payout"


def payout_pending_transfer(merchant_id: str, payout: str, amount: int, currency: str) -> TransferSpec:
    """Funds leave available while the bank transfer runs (two-phase: pending)."""
    return TransferSpec(
        id=payout_id(payout),
        amount=amount,
        currency=currency,
        code=TransferCode.PAYOUT,
        debit_account_id=_account(merchant_id, currency, AccountRole.MERCHANT_AVAILABLE),
        credit_account_id=platform_account(currency, AccountRole.PLATFORM_CASH),
        pending=True,
        source=payout,
        kind="payout",
    )


def payout_outcome_transfer(payout: str, amount: int, currency: str, *, paid: bool) -> TransferSpec:
    """Post the payout (paid) or void it (failed: the funds return to available)."""
    return TransferSpec(
        id=f"{payout}:{'paid' if paid else 'failed'}",
        amount=amount,
        currency=currency,
        code=TransferCode.PAYOUT,
        post_pending=paid,
        void_pending=not paid,
        pending_id=payout_id(payout),
        source=payout,
        kind="payout" if paid else "payout_failure",
    )
