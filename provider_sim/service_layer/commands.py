"""Commands the provider's use cases accept and the results they return (no protobuf here)."""

from __future__ import annotations

import dataclasses

from provider_sim.domain.injection import FailureConfig
from provider_sim.domain.model import Card, Dispute, Profile, Refund, Transaction
from provider_sim.domain.settlement import Report


@dataclasses.dataclass(frozen=True, slots=True)
class Authorize:
    """Authorize `amount` on `card` for `merchant_id`; idempotent by (provider, reference)."""

    provider: str
    reference: str
    amount: int
    currency: str
    card: Card
    merchant_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class Capture:
    """Capture `amount` (0 = all) of a transaction; idempotent by `reference` when given."""

    provider: str
    transaction_id: str
    amount: int
    reference: str


@dataclasses.dataclass(frozen=True, slots=True)
class Void:
    """Void an uncaptured authorization."""

    provider: str
    transaction_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class RefundCommand:
    """Refund `amount` of a captured transaction; idempotent by `reference`."""

    provider: str
    transaction_id: str
    amount: int
    reference: str


@dataclasses.dataclass(frozen=True, slots=True)
class TriggerChargeback:
    """Open a chargeback on a captured transaction (amount 0 = all not refunded)."""

    provider: str
    transaction_id: str
    amount: int
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class ResolveChargeback:
    """Close a chargeback as won or lost."""

    provider: str
    dispute_id: str
    won: bool


@dataclasses.dataclass(frozen=True, slots=True)
class TransactionResult:
    """A transaction, and whether the answer is a replay of an earlier one."""

    transaction: Transaction
    replayed: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class RefundResult:
    """A refund, the transaction after it, and whether this is a replay."""

    refund: Refund
    transaction: Transaction
    replayed: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class TransactionView:
    """A transaction with its refunds."""

    transaction: Transaction
    refunds: list[Refund]


@dataclasses.dataclass(frozen=True, slots=True)
class ChargebackResult:
    """The webhook event sent and the dispute it concerns."""

    event_id: str
    dispute: Dispute


@dataclasses.dataclass(slots=True)
class Counters:
    """What one provider has done since the process started."""

    authorizations: int = 0
    approvals: int = 0
    declines: int = 0
    errors: int = 0
    timeouts: int = 0
    captures: int = 0
    voids: int = 0
    refunds: int = 0
    webhooks_sent: int = 0
    webhook_failures: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class ProviderStateView:
    """One provider's profile, failure configuration and counters."""

    profile: Profile
    latency_scale: float
    failures: FailureConfig
    counters: Counters


@dataclasses.dataclass(frozen=True, slots=True)
class SettlementReportResult:
    """A generated report, its CSV and where it was written."""

    report: Report
    csv: str
    path: str
