"""Protobuf ↔ domain translation. Generated types stop here (CONVENTIONS.md §2)."""

from __future__ import annotations

import datetime
import re
from typing import Any

from clearhouse.payments.v1 import (
    admin_pb2,
    balance_pb2,
    events_pb2,
    merchants_pb2,
    payment_intents_pb2,
    risk_pb2,
    tokens_pb2,
)
from google.protobuf import json_format, timestamp_pb2

from payments_svc.domain import risk
from payments_svc.domain.breaker import BreakerConfig, BreakerSnapshot
from payments_svc.domain.breaker import State as BreakerState
from payments_svc.domain.cards import Card, TokenInfo
from payments_svc.domain.events import Event
from payments_svc.domain.merchants import ApiKey, Merchant, Pricing, RiskSettings, Role
from payments_svc.domain.payments import CaptureMethod, PaymentIntent, Status
from payments_svc.service_layer.reads import Balance, BalanceTransaction

PaymentIntentProto = payment_intents_pb2.PaymentIntent
_SEPARATORS = re.compile(r"[\s-]")


def timestamp(value: datetime.datetime | None) -> timestamp_pb2.Timestamp | None:
    """A Timestamp, or None for an unset time."""
    if value is None:
        return None
    message = timestamp_pb2.Timestamp()
    message.FromDatetime(value)
    return message


def from_timestamp(message: Any, field: str) -> datetime.datetime | None:
    """The datetime of an optional Timestamp field, or None when unset."""
    if not message.HasField(field):
        return None
    value: datetime.datetime = getattr(message, field).ToDatetime(tzinfo=datetime.UTC)
    return value


# Merchants ------------------------------------------------------------------------------------


def merchant(value: Merchant) -> merchants_pb2.Merchant:
    """Merchant → proto."""
    return merchants_pb2.Merchant(
        id=value.id,
        name=value.name,
        country=value.country,
        default_currency=value.default_currency,
        pricing=merchants_pb2.Pricing(
            fee_basis_points=value.pricing.fee_basis_points, fee_fixed=value.pricing.fee_fixed
        ),
        risk_settings=merchants_pb2.RiskSettings(
            amount_threshold=value.risk_settings.amount_threshold,
            review_score=value.risk_settings.review_score,
            block_score=value.risk_settings.block_score,
        ),
        payout_bank_account=value.payout_bank_account,
        created_at=timestamp(value.created_at),
    )


def api_key(value: ApiKey, secret: str = "") -> merchants_pb2.ApiKey:
    """ApiKey → proto (the secret only when just created)."""
    return merchants_pb2.ApiKey(
        id=value.id,
        secret=secret,
        principal=value.principal,
        role=merchants_pb2.ApiKey.Role.Value(value.role.value),
        merchant_id=value.merchant_id,
        secret_last4=value.secret_last4,
        created_at=timestamp(value.created_at),
        revoked_at=timestamp(value.revoked_at),
    )


def role(value: int) -> Role | None:
    """Proto role → domain (None when unset)."""
    if value == merchants_pb2.ApiKey.Role.ROLE_UNSPECIFIED:
        return None
    try:
        return Role(merchants_pb2.ApiKey.Role.Name(value))  # type: ignore[arg-type]
    except ValueError:
        return None


def pricing(message: Any, field: str) -> Pricing | None:
    """The request's pricing if set."""
    if not message.HasField(field):
        return None
    found = getattr(message, field)
    return Pricing(found.fee_basis_points, found.fee_fixed)


def risk_settings(message: Any, field: str) -> RiskSettings | None:
    """The request's risk thresholds if set (unset numbers take the defaults)."""
    if not message.HasField(field):
        return None
    found = getattr(message, field)
    defaults = RiskSettings()
    return RiskSettings(
        found.amount_threshold or defaults.amount_threshold,
        found.review_score or defaults.review_score,
        found.block_score or defaults.block_score,
    )


# Payment intents ------------------------------------------------------------------------------


def capture_method(value: int) -> CaptureMethod | None:
    """Proto capture method → domain (None when unset)."""
    if value == PaymentIntentProto.CaptureMethod.CAPTURE_METHOD_UNSPECIFIED:
        return None
    return CaptureMethod(PaymentIntentProto.CaptureMethod.Name(value))  # type: ignore[arg-type]


def status(value: int) -> Status | None:
    """Proto status → domain (None when unset)."""
    if value == PaymentIntentProto.Status.STATUS_UNSPECIFIED:
        return None
    return Status(PaymentIntentProto.Status.Name(value))  # type: ignore[arg-type]


def card(message: tokens_pb2.CardDetails) -> Card:
    """CardDetails → Card (spaces and dashes stripped from the number)."""
    return Card(
        number=_SEPARATORS.sub("", message.number),
        exp_month=message.exp_month,
        exp_year=message.exp_year,
        cvc=message.cvc.strip(),
        cardholder_name=message.cardholder_name,
    )


def _brand(value: str) -> int:
    try:
        return tokens_pb2.Token.Brand.Value(value) if value else tokens_pb2.Token.Brand.BRAND_UNSPECIFIED
    except ValueError:
        return tokens_pb2.Token.Brand.BRAND_UNSPECIFIED


def payment_intent(value: PaymentIntent) -> payment_intents_pb2.PaymentIntent:
    """PaymentIntent → proto."""
    message = payment_intents_pb2.PaymentIntent(
        id=value.id,
        merchant_id=value.merchant_id,
        status=PaymentIntentProto.Status.Value(value.status.value),
        amount=value.amount,
        currency=value.currency,
        capture_method=PaymentIntentProto.CaptureMethod.Value(value.capture_method.value),
        amount_capturable=value.amount_capturable,
        amount_captured=value.amount_captured,
        amount_refunded=value.amount_refunded,
        provider=value.provider,
        description=value.description,
        metadata=dict(value.metadata),
        created_at=timestamp(value.created_at),
        updated_at=timestamp(value.updated_at),
        preferred_provider=value.preferred_provider,
        provider_reference=value.provider_reference,
        authorization_expires_at=timestamp(value.authorization_expires_at),
        cancellation_reason=value.cancellation_reason,
        fee_amount=value.fee_amount,
        amount_disputed=value.amount_disputed,
        risk_score=value.risk_score,
    )
    if value.last_error is not None:
        message.last_error.CopyFrom(
            payment_intents_pb2.PaymentError(
                code=value.last_error.code,
                decline_code=value.last_error.decline_code,
                message=value.last_error.message,
                provider=value.last_error.provider,
            )
        )
    if value.payment_method is not None:
        method = value.payment_method
        message.payment_method.CopyFrom(
            payment_intents_pb2.PaymentMethodDetails(
                token=method.token,
                brand=_brand(method.brand),  # type: ignore[arg-type]
                last4=method.last4,
                exp_month=method.exp_month,
                exp_year=method.exp_year,
                fingerprint=method.fingerprint,
                country=method.country,
            )
        )
    return message


def render_intent(value: PaymentIntent) -> dict[str, Any]:
    """The intent as its API returns it, in the proto3 JSON mapping (event payloads)."""
    return json_format.MessageToDict(
        payment_intent(value),
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )


def token(value: TokenInfo) -> tokens_pb2.Token:
    """TokenInfo → proto."""
    return tokens_pb2.Token(
        id=value.token,
        brand=_brand(value.brand),  # type: ignore[arg-type]
        last4=value.last4,
        exp_month=value.exp_month,
        exp_year=value.exp_year,
        fingerprint=value.fingerprint,
        country=value.country,
        created_at=timestamp(value.created_at),
    )


# Events, balances, risk, admin ------------------------------------------------------------------


def event(value: Event) -> events_pb2.Event:
    """Event → proto."""
    message = events_pb2.Event(
        id=value.id,
        type=value.type,
        merchant_id=value.merchant_id,
        created_at=timestamp(value.created_at),
        trace_id=value.trace_id,
    )
    message.data.update(value.data)
    return message


def balance(value: Balance) -> balance_pb2.GetBalanceResponse:
    """Balance → proto."""

    def amounts(rows: list[tuple[int, str]]) -> list[balance_pb2.BalanceAmount]:
        return [balance_pb2.BalanceAmount(amount=a, currency=c) for a, c in rows]

    return balance_pb2.GetBalanceResponse(
        available=amounts(value.available), pending=amounts(value.pending), reserved=amounts(value.reserved)
    )


def balance_transaction(value: BalanceTransaction) -> balance_pb2.BalanceTransaction:
    """BalanceTransaction → proto."""
    return balance_pb2.BalanceTransaction(
        id=value.id,
        type=value.type,
        amount=value.amount,
        currency=value.currency,
        balance_type=value.balance_type,
        source=value.source,
        balance_after=value.balance_after,
        created_at=timestamp(value.created_at),
    )


def assessment(value: risk.Assessment) -> risk_pb2.RiskAssessment:
    """Assessment → proto."""
    return risk_pb2.RiskAssessment(
        score=value.score,
        level=risk_pb2.RiskAssessment.Level.Value(value.level.value),
        decision=risk_pb2.RiskAssessment.Decision.Value(value.decision.value),
        factors=[risk_pb2.RiskFactor(code=f.code, score=f.score, detail=f.detail) for f in value.factors],
    )


def circuit_breaker(
    snapshot: BreakerSnapshot, state: BreakerState, config: BreakerConfig
) -> admin_pb2.CircuitBreaker:
    """One row of the provider health board."""
    opened_at = (
        datetime.datetime.fromtimestamp(snapshot.opened_at, tz=datetime.UTC) if snapshot.opened_at else None
    )
    return admin_pb2.CircuitBreaker(
        provider=snapshot.provider,
        state=admin_pb2.CircuitBreaker.State.Value(state.value),
        consecutive_failures=snapshot.consecutive_failures,
        failure_threshold=config.failure_threshold,
        opened_at=timestamp(opened_at),
        recovery_timeout_seconds=round(config.recovery_timeout_seconds),
        half_open_max_calls=config.half_open_max_calls,
    )
