"""The simulated acquirers' vocabulary: profiles, test cards, decline codes and the transaction.

Pure: no protobuf, no SQLAlchemy, no I/O. Errors carry a stable `reason` and a `kind` that the
service layer maps once onto the chassis error classes.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum

PROVIDER_A = "provider_a"
PROVIDER_B = "provider_b"
PROVIDERS = (PROVIDER_A, PROVIDER_B)

REFERENCE_LENGTH_MAX = 128
MERCHANT_ID_LENGTH_MAX = 128
REASON_LENGTH_MAX = 64
CARD_NUMBER_LENGTH_MIN = 12
CARD_NUMBER_LENGTH_MAX = 19


class ErrorKind(enum.Enum):
    """What kind of failure a DomainError is; the service layer maps each to one gRPC code."""

    INVALID_ARGUMENT = "invalid_argument"
    FAILED_PRECONDITION = "failed_precondition"
    NOT_FOUND = "not_found"


class DomainError(Exception):
    """A refused operation with a stable reason (e.g. `CAPTURE_EXCEEDS_AUTHORIZED`)."""

    kind = ErrorKind.FAILED_PRECONDITION

    def __init__(self, message: str, *, reason: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.field = field


class InvalidRequest(DomainError):
    """The request is malformed (names the field)."""

    kind = ErrorKind.INVALID_ARGUMENT


class IllegalTransition(DomainError):
    """The transaction is not in a state that allows the operation."""

    kind = ErrorKind.FAILED_PRECONDITION


class UnknownTransaction(DomainError):
    """No such transaction (or refund, dispute) at this provider."""

    kind = ErrorKind.NOT_FOUND


@dataclasses.dataclass(frozen=True, slots=True)
class Profile:
    """How one acquirer behaves when nothing is injected."""

    name: str
    # Share of ordinary (non test) cards approved, as a probability.
    approval_rate: float
    latency_ms_min: int
    latency_ms_max: int
    fee_basis_points: int
    # Whether several partial captures of one authorization are allowed (else exactly one).
    multi_capture: bool


PROFILES: dict[str, Profile] = {
    PROVIDER_A: Profile(PROVIDER_A, 0.95, 100, 300, 290, multi_capture=False),
    PROVIDER_B: Profile(PROVIDER_B, 0.90, 200, 500, 250, multi_capture=True),
}


def profile(provider: str) -> Profile:
    """The profile of `provider`, or InvalidRequest for an unknown name."""
    found = PROFILES.get(provider)
    if found is None:
        raise InvalidRequest(
            "provider must be provider_a or provider_b", reason="UNKNOWN_PROVIDER", field="provider"
        )
    return found


class Status(enum.StrEnum):
    """Status of a transaction at the provider (the proto's Transaction.Status names)."""

    AUTHORIZED = "AUTHORIZED"
    DECLINED = "DECLINED"
    CAPTURED = "CAPTURED"
    VOIDED = "VOIDED"
    REFUNDED = "REFUNDED"
    CHARGED_BACK = "CHARGED_BACK"


class DeclineCode(enum.StrEnum):
    """The documented decline and error codes."""

    CARD_DECLINED = "card_declined"
    GENERIC_DECLINE = "generic_decline"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    EXPIRED_CARD = "expired_card"
    INCORRECT_CVC = "incorrect_cvc"
    PROCESSING_ERROR = "processing_error"
    DO_NOT_HONOR = "do_not_honor"
    FRAUDULENT = "fraudulent"


DECLINE_MESSAGES: dict[DeclineCode, str] = {
    DeclineCode.GENERIC_DECLINE: "The card was declined.",
    DeclineCode.CARD_DECLINED: "The card was declined.",
    DeclineCode.INSUFFICIENT_FUNDS: "The card has insufficient funds.",
    DeclineCode.EXPIRED_CARD: "The card has expired.",
    DeclineCode.INCORRECT_CVC: "The card's security code is incorrect.",
    DeclineCode.DO_NOT_HONOR: "The issuer declined the card (do not honor).",
    DeclineCode.FRAUDULENT: "The issuer declined the card as suspected fraud.",
    DeclineCode.PROCESSING_ERROR: "An error occurred while processing the card.",
}


class CardBehaviour(enum.StrEnum):
    """What a card does at authorization (test cards are deterministic)."""

    APPROVE = "approve"
    DECLINE = "decline"
    ERROR = "error"
    TIMEOUT = "timeout"
    CHARGEBACK_AFTER_CAPTURE = "chargeback_after_capture"
    # An ordinary card: approved at the profile's approval rate.
    PROFILE = "profile"


@dataclasses.dataclass(frozen=True, slots=True)
class TestCard:
    """One documented test card."""

    behaviour: CardBehaviour
    decline_code: DeclineCode | None = None
    description: str = ""


# DESIGN.md's table, exactly. Numbers are compared whole; nothing else about them is stored.
TEST_CARDS: dict[str, TestCard] = {
    "4242424242424242": TestCard(CardBehaviour.APPROVE, description="approved (Visa)"),
    "5555555555554444": TestCard(CardBehaviour.APPROVE, description="approved (Mastercard)"),
    "378282246310005": TestCard(CardBehaviour.APPROVE, description="approved (Amex)"),
    "4000000000000002": TestCard(CardBehaviour.DECLINE, DeclineCode.GENERIC_DECLINE, "generic decline"),
    "4000000000009995": TestCard(CardBehaviour.DECLINE, DeclineCode.INSUFFICIENT_FUNDS, "insufficient funds"),
    "4000000000000069": TestCard(CardBehaviour.DECLINE, DeclineCode.EXPIRED_CARD, "expired card"),
    "4000000000000127": TestCard(CardBehaviour.DECLINE, DeclineCode.INCORRECT_CVC, "incorrect CVC"),
    "4000000000000119": TestCard(CardBehaviour.ERROR, DeclineCode.PROCESSING_ERROR, "processing error"),
    "4000000000007130": TestCard(CardBehaviour.TIMEOUT, description="authorizes, answers after the deadline"),
    "4000000000000259": TestCard(
        CardBehaviour.CHARGEBACK_AFTER_CAPTURE, description="approved, chargeback webhook after capture"
    ),
}


def card_behaviour(number: str) -> TestCard:
    """The behaviour of a card number: its test-card entry, or PROFILE for any other card."""
    return TEST_CARDS.get(number, TestCard(CardBehaviour.PROFILE))


def luhn_valid(number: str) -> bool:
    """Luhn checksum of a digit string."""
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = ord(char) - 48
        if index % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


@dataclasses.dataclass(frozen=True, slots=True)
class Card:
    """The card as given for one authorization; never stored (only last4 and a fingerprint)."""

    number: str
    exp_month: int
    exp_year: int
    cvc: str = ""

    def __repr__(self) -> str:
        # Keep the PAN and CVC out of any repr that might reach a log line or traceback.
        return f"Card(last4={self.number[-4:]!r}, exp={self.exp_month:02d}/{self.exp_year})"

    def validate(self) -> None:
        """Refuse a malformed card (messages never echo the number)."""
        number = self.number
        if not number.isdigit() or not CARD_NUMBER_LENGTH_MIN <= len(number) <= CARD_NUMBER_LENGTH_MAX:
            raise InvalidRequest(
                "card number must be 12-19 digits", reason="INVALID_CARD_NUMBER", field="card.number"
            )
        if not luhn_valid(number):
            raise InvalidRequest(
                "card number fails the Luhn check", reason="INVALID_CARD_NUMBER", field="card.number"
            )
        if not 1 <= self.exp_month <= 12:
            raise InvalidRequest("exp_month must be 1-12", reason="INVALID_EXPIRY", field="card.exp_month")
        if not 1000 <= self.exp_year <= 9999:
            raise InvalidRequest(
                "exp_year must have four digits", reason="INVALID_EXPIRY", field="card.exp_year"
            )
        if self.cvc and (not self.cvc.isdigit() or not 3 <= len(self.cvc) <= 4):
            raise InvalidRequest("cvc must be 3 or 4 digits", reason="INVALID_CVC", field="card.cvc")

    def expired(self, today: datetime.date) -> bool:
        """True once the expiry month is over."""
        return (self.exp_year, self.exp_month) < (today.year, today.month)

    @property
    def last4(self) -> str:
        """The last four digits."""
        return self.number[-4:]


@dataclasses.dataclass(slots=True)
class Transaction:
    """The provider's record of one authorization and what followed."""

    id: str
    provider: str
    reference: str
    merchant_id: str
    status: Status
    amount: int
    currency: str
    last4: str
    card_fingerprint: str
    created_at: datetime.datetime
    updated_at: datetime.datetime
    amount_captured: int = 0
    amount_refunded: int = 0
    decline_code: str = ""
    message: str = ""
    authorization_code: str = ""
    behaviour: str = ""
    captured_at: datetime.datetime | None = None
    chargeback_due_at: datetime.datetime | None = None

    @property
    def capturable(self) -> int:
        """Amount still capturable."""
        return self.amount - self.amount_captured if self.status is Status.AUTHORIZED else 0

    def same_request(self, *, amount: int, currency: str, merchant_id: str, card_fingerprint: str) -> bool:
        """True when a repeated Authorize carries the same request as the recorded one."""
        return (
            self.amount == amount
            and self.currency == currency
            and self.merchant_id == merchant_id
            and self.card_fingerprint == card_fingerprint
        )

    def capture(self, amount: int, now: datetime.datetime, *, multi_capture: bool) -> int:
        """Capture `amount` (0 = all that remains); return the amount captured."""
        if self.status is Status.CAPTURED and multi_capture and self.amount_captured < self.amount:
            # Multi-capture profiles accept further partial captures up to the authorized amount.
            remaining = self.amount - self.amount_captured
        elif self.status is Status.AUTHORIZED:
            remaining = self.amount
        else:
            reason = {
                Status.CAPTURED: "TRANSACTION_ALREADY_CAPTURED",
                Status.REFUNDED: "TRANSACTION_ALREADY_CAPTURED",
                Status.CHARGED_BACK: "TRANSACTION_ALREADY_CAPTURED",
                Status.VOIDED: "TRANSACTION_VOIDED",
                Status.DECLINED: "TRANSACTION_DECLINED",
            }[self.status]
            raise IllegalTransition(f"a {self.status.value} transaction cannot be captured", reason=reason)
        amount = amount or remaining
        if amount < 0:
            raise InvalidRequest("amount must not be negative", reason="INVALID_AMOUNT", field="amount")
        if amount > remaining:
            raise IllegalTransition(
                f"capture of {amount} exceeds the {remaining} still capturable",
                reason="CAPTURE_EXCEEDS_AUTHORIZED",
            )
        self.amount_captured += amount
        self.status = Status.CAPTURED
        self.captured_at = self.captured_at or now
        self.updated_at = now
        return amount

    def void(self, now: datetime.datetime) -> bool:
        """Void the authorization; return False when it was already voided (nothing changes)."""
        if self.status is Status.VOIDED:
            return False
        if self.status is not Status.AUTHORIZED:
            reason = (
                "TRANSACTION_DECLINED" if self.status is Status.DECLINED else "TRANSACTION_ALREADY_CAPTURED"
            )
            raise IllegalTransition(f"a {self.status.value} transaction cannot be voided", reason=reason)
        self.status = Status.VOIDED
        self.updated_at = now
        return True

    def refund(self, amount: int, now: datetime.datetime) -> None:
        """Refund `amount` of the captured money; never more than captured minus refunded."""
        if amount <= 0:
            raise InvalidRequest("amount must be positive", reason="INVALID_AMOUNT", field="amount")
        if self.status is Status.CHARGED_BACK:
            raise IllegalTransition(
                "a charged-back transaction cannot be refunded", reason="TRANSACTION_DISPUTED"
            )
        if self.status not in {Status.CAPTURED, Status.REFUNDED}:
            raise IllegalTransition(
                f"a {self.status.value} transaction cannot be refunded", reason="TRANSACTION_NOT_CAPTURED"
            )
        refundable = self.amount_captured - self.amount_refunded
        if amount > refundable:
            raise IllegalTransition(
                f"refund of {amount} exceeds the {refundable} still refundable",
                reason="REFUND_EXCEEDS_CAPTURED",
            )
        self.amount_refunded += amount
        if self.amount_refunded == self.amount_captured:
            self.status = Status.REFUNDED
        self.updated_at = now

    def open_chargeback(self, amount: int, now: datetime.datetime) -> int:
        """Mark the transaction charged back; return the disputed amount (0 = all not refunded)."""
        if self.status is Status.CHARGED_BACK:
            raise IllegalTransition("a chargeback is already open", reason="CHARGEBACK_ALREADY_OPEN")
        if self.status is not Status.CAPTURED:
            raise IllegalTransition(
                f"a {self.status.value} transaction cannot be charged back", reason="TRANSACTION_NOT_CAPTURED"
            )
        disputable = self.amount_captured - self.amount_refunded
        amount = amount or disputable
        if amount <= 0 or amount > disputable:
            raise InvalidRequest(
                f"chargeback amount must be between 1 and {disputable}",
                reason="INVALID_AMOUNT",
                field="amount",
            )
        self.status = Status.CHARGED_BACK
        self.chargeback_due_at = None
        self.updated_at = now
        return amount

    def close_chargeback(self, won: bool, now: datetime.datetime) -> None:
        """A won chargeback returns the transaction to CAPTURED; a lost one stays CHARGED_BACK."""
        if self.status is not Status.CHARGED_BACK:
            raise IllegalTransition("no chargeback is open", reason="CHARGEBACK_NOT_OPEN")
        if won:
            self.status = Status.CAPTURED
        self.updated_at = now


class DisputeStatus(enum.StrEnum):
    """Life cycle of a chargeback at the provider."""

    OPEN = "open"
    WON = "won"
    LOST = "lost"


@dataclasses.dataclass(slots=True)
class Dispute:
    """One chargeback opened by the issuer on a captured transaction."""

    id: str
    provider: str
    transaction_id: str
    amount: int
    currency: str
    reason: str
    status: DisputeStatus
    created_at: datetime.datetime
    resolved_at: datetime.datetime | None = None

    def resolve(self, won: bool, now: datetime.datetime) -> None:
        """Close the dispute as won or lost, once."""
        if self.status is not DisputeStatus.OPEN:
            raise IllegalTransition(
                f"the dispute is already {self.status.value}", reason="DISPUTE_ALREADY_RESOLVED"
            )
        self.status = DisputeStatus.WON if won else DisputeStatus.LOST
        self.resolved_at = now


@dataclasses.dataclass(frozen=True, slots=True)
class Refund:
    """The provider's record of one refund."""

    id: str
    provider: str
    transaction_id: str
    reference: str
    amount: int
    currency: str
    created_at: datetime.datetime
