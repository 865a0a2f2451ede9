"""Payment intents: the state machine of DESIGN.md §3. Pure: no protobuf, no SQLAlchemy, no I/O.

An intent moves `created → authorized → captured → settled`, `created → declined` (confirmable
again), `authorized → canceled`; `processing` marks an authorization whose outcome is unknown
(a provider timeout) until a worker resolves it. Every change goes through `transition`, which
refuses anything the table below does not allow.

Work that talks to other services (authorize, capture, void) is recorded on the intent as an
`Operation` before it starts: that record is the recovery point. Whoever finds an operation whose
lease has lapsed (a retry, the idempotency completer, the resolver worker) drives it to its end
with the same deterministic ids, so a crash never charges a card twice.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Mapping

from chassis import money
from payments_svc.domain.errors import IllegalTransition, InvalidRequest

DESCRIPTION_LENGTH_MAX = 1_000
METADATA_PAIRS_MAX = 50
METADATA_KEY_LENGTH_MAX = 40
METADATA_VALUE_LENGTH_MAX = 500
CANCELLATION_REASON_LENGTH_MAX = 200
PROVIDER_A = "provider_a"
PROVIDER_B = "provider_b"
PROVIDERS = (PROVIDER_A, PROVIDER_B)


class Status(enum.StrEnum):
    """Lifecycle state (the proto's PaymentIntent.Status names)."""

    CREATED = "CREATED"
    PROCESSING = "PROCESSING"
    AUTHORIZED = "AUTHORIZED"
    CAPTURED = "CAPTURED"
    SETTLED = "SETTLED"
    DECLINED = "DECLINED"
    CANCELED = "CANCELED"
    REFUNDED = "REFUNDED"
    DISPUTED = "DISPUTED"


class CaptureMethod(enum.StrEnum):
    """When the authorized amount is captured."""

    AUTOMATIC = "AUTOMATIC"
    MANUAL = "MANUAL"


# Allowed transitions; anything else is an illegal transition.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.CREATED: frozenset(
        {Status.PROCESSING, Status.AUTHORIZED, Status.CAPTURED, Status.DECLINED, Status.CANCELED}
    ),
    Status.DECLINED: frozenset(
        {Status.PROCESSING, Status.AUTHORIZED, Status.CAPTURED, Status.DECLINED, Status.CANCELED}
    ),
    Status.PROCESSING: frozenset({Status.AUTHORIZED, Status.CAPTURED, Status.DECLINED}),
    Status.AUTHORIZED: frozenset({Status.CAPTURED, Status.CANCELED}),
    Status.CAPTURED: frozenset({Status.SETTLED, Status.REFUNDED, Status.DISPUTED}),
    Status.SETTLED: frozenset({Status.REFUNDED, Status.DISPUTED}),
    Status.DISPUTED: frozenset({Status.CAPTURED, Status.SETTLED, Status.REFUNDED}),
    Status.CANCELED: frozenset(),
    Status.REFUNDED: frozenset(),
}

CONFIRMABLE = frozenset({Status.CREATED, Status.DECLINED})
CANCELABLE_WITHOUT_PROVIDER = frozenset({Status.CREATED, Status.DECLINED})


class OperationKind(enum.StrEnum):
    """Work in flight against other services, recorded before it starts."""

    AUTHORIZE = "authorize"
    CAPTURE = "capture"
    CANCEL = "cancel"


@dataclasses.dataclass(frozen=True, slots=True)
class Operation:
    """The recovery point of an intent: what is being done, with which parameters.

    `lease_until` set means a request is working on it until then; None means nobody is (its
    outcome is unknown, or its worker died) and the resolver or a retry may take it over.
    """

    kind: OperationKind
    claim_id: str
    started_at: datetime.datetime
    lease_until: datetime.datetime | None
    # Authorize: the amount; capture: the amount to capture.
    amount: int
    # Authorize: capture right after (automatic capture).
    capture: bool = False
    # Authorize: the token and provider chosen, and the provider reference used.
    token: str = ""
    provider: str = ""
    reference: str = ""
    # Capture (and authorize with capture): the platform fee fixed when the operation began, so
    # a resumed operation posts exactly the same transfers.
    fee: int = 0
    # Cancel: the reason given.
    reason: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class PaymentError:
    """Why the last confirmation failed."""

    code: str
    decline_code: str = ""
    message: str = ""
    provider: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class PaymentMethodDetails:
    """The card used, described without its number."""

    token: str
    brand: str = ""
    last4: str = ""
    exp_month: int = 0
    exp_year: int = 0
    fingerprint: str = ""
    country: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class PaymentIntent:
    """One payment from creation to settlement."""

    id: str
    merchant_id: str
    status: Status
    amount: int
    currency: str
    capture_method: CaptureMethod
    created_at: datetime.datetime
    updated_at: datetime.datetime
    amount_capturable: int = 0
    amount_captured: int = 0
    amount_refunded: int = 0
    amount_disputed: int = 0
    fee_amount: int = 0
    last_error: PaymentError | None = None
    provider: str = ""
    provider_reference: str = ""
    preferred_provider: str = ""
    payment_method: PaymentMethodDetails | None = None
    description: str = ""
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)
    cancellation_reason: str = ""
    risk_score: int = 0
    # Number of confirmations started; it numbers provider references of re-confirmations.
    attempt: int = 0
    authorization_expires_at: datetime.datetime | None = None
    operation: Operation | None = None


def transition(intent: PaymentIntent, to: Status, now: datetime.datetime, **changes: object) -> PaymentIntent:
    """The intent moved to `to` with `changes`; IllegalTransition if the table forbids it."""
    if to not in TRANSITIONS[intent.status]:
        raise IllegalTransition(
            f"a payment intent in {intent.status.value} cannot become {to.value}",
            reason="ILLEGAL_TRANSITION",
        )
    return dataclasses.replace(intent, status=to, updated_at=now, **changes)  # type: ignore[arg-type]


# Validation of requests ---------------------------------------------------------------------


def validate_amount(amount: int, field: str = "amount") -> int:
    """A positive amount of minor units, at most 99,999,999,999."""
    try:
        return money.validate_amount(amount, maximum=money.AMOUNT_MAX, field=field)
    except money.MoneyError as error:
        raise InvalidRequest(str(error), reason="INVALID_AMOUNT", field=field) from None


def validate_description(description: str) -> str:
    """At most 1,000 characters."""
    if len(description) > DESCRIPTION_LENGTH_MAX:
        raise InvalidRequest(
            "description must be at most 1000 characters", reason="INVALID_DESCRIPTION", field="description"
        )
    return description


def validate_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """At most 50 pairs; keys 1-40 and values at most 500 characters."""
    if len(metadata) > METADATA_PAIRS_MAX:
        raise InvalidRequest("metadata has more than 50 pairs", reason="INVALID_METADATA", field="metadata")
    for key, value in metadata.items():
        if not 1 <= len(key) <= METADATA_KEY_LENGTH_MAX:
            raise InvalidRequest(
                "metadata keys must be 1-40 characters",
                reason="INVALID_METADATA",
                field=f"metadata[{key[:40]}]",
            )
        if len(value) > METADATA_VALUE_LENGTH_MAX:
            raise InvalidRequest(
                "metadata values must be at most 500 characters",
                reason="INVALID_METADATA",
                field=f"metadata[{key}]",
            )
    return dict(metadata)


def validate_provider(provider: str, field: str = "preferred_provider") -> str:
    """Empty, provider_a or provider_b."""
    if provider and provider not in PROVIDERS:
        raise InvalidRequest(
            "provider must be provider_a or provider_b", reason="UNKNOWN_PROVIDER", field=field
        )
    return provider


def validate_cancellation_reason(reason: str) -> str:
    """At most 200 characters."""
    if len(reason) > CANCELLATION_REASON_LENGTH_MAX:
        raise InvalidRequest(
            "cancellation_reason must be at most 200 characters",
            reason="INVALID_CANCELLATION_REASON",
            field="cancellation_reason",
        )
    return reason


# Guards of the operations -------------------------------------------------------------------


def check_confirmable(intent: PaymentIntent) -> None:
    """Only CREATED and DECLINED intents may be confirmed."""
    if intent.status not in CONFIRMABLE:
        raise IllegalTransition(
            f"a payment intent in {intent.status.value} cannot be confirmed",
            reason="PAYMENT_NOT_CONFIRMABLE",
        )


def capture_amount(intent: PaymentIntent, requested: int | None) -> int:
    """The amount a capture takes: all that is capturable, or `requested` if at most that."""
    if intent.status is not Status.AUTHORIZED:
        raise IllegalTransition(
            f"a payment intent in {intent.status.value} cannot be captured", reason="PAYMENT_NOT_CAPTURABLE"
        )
    if requested is None:
        return intent.amount_capturable
    validate_amount(requested, "amount_to_capture")
    if requested > intent.amount_capturable:
        raise InvalidRequest(
            f"amount_to_capture exceeds the capturable amount {intent.amount_capturable}",
            reason="AMOUNT_TO_CAPTURE_TOO_LARGE",
            field="amount_to_capture",
        )
    return requested


def check_cancelable(intent: PaymentIntent) -> None:
    """CREATED, DECLINED and AUTHORIZED intents may be canceled."""
    if intent.status not in CANCELABLE_WITHOUT_PROVIDER and intent.status is not Status.AUTHORIZED:
        raise IllegalTransition(
            f"a payment intent in {intent.status.value} cannot be canceled", reason="PAYMENT_NOT_CANCELABLE"
        )


def provider_reference(intent_id: str, attempt: int) -> str:
    """The provider reference of confirmation `attempt`: the intent id, then `<id>:<attempt>`.

    The provider authorizes at most once per reference, so a retry of the same attempt can never
    charge twice, and a re-confirmation after a decline gets a fresh reference.
    """
    return intent_id if attempt <= 1 else f"{intent_id}:{attempt}"


# Declines -----------------------------------------------------------------------------------

# Provider decline code → (PaymentError.code, PaymentError.decline_code), DESIGN.md's table.
_DECLINES: dict[str, tuple[str, str]] = {
    "generic_decline": ("card_declined", "generic_decline"),
    "card_declined": ("card_declined", "generic_decline"),
    "insufficient_funds": ("card_declined", "insufficient_funds"),
    "do_not_honor": ("card_declined", "do_not_honor"),
    "fraudulent": ("card_declined", "fraudulent"),
    "expired_card": ("expired_card", ""),
    "incorrect_cvc": ("incorrect_cvc", ""),
    "processing_error": ("processing_error", ""),
}

CUSTOMER_MESSAGES = {
    "card_declined": "Your card was declined.",
    "expired_card": "Your card has expired.",
    "incorrect_cvc": "Your card's security code is incorrect.",
    "processing_error": "An error occurred while processing your card. Try again.",
    "fraud_suspected": "The payment was blocked as suspected fraud.",
    "provider_unavailable": "No payment provider is available right now. Try again later.",
}


def decline_error(provider_decline_code: str, provider: str) -> PaymentError:
    """The PaymentError for a provider's decline code (unknown codes are generic declines)."""
    code, decline_code = _DECLINES.get(provider_decline_code, ("card_declined", "generic_decline"))
    return PaymentError(code, decline_code, CUSTOMER_MESSAGES[code], provider)


def platform_error(code: str, provider: str = "") -> PaymentError:
    """A PaymentError raised by the platform itself (fraud_suspected, provider_unavailable, …)."""
    return PaymentError(code, "", CUSTOMER_MESSAGES[code], provider)
