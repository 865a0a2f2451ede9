"""Outgoing webhooks: endpoint rules, the retry schedule, targets refused for SSRF. Pure.

A delivery is attempted at once, then after each delay of `RETRY_DELAYS_SECONDS` (about three
days in all, like Stripe's), each multiplied by the scale setting (tiny in tests). After the last
failed attempt the delivery is dead-lettered.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import ipaddress
import urllib.parse
from collections.abc import Iterable, Sequence

from payments_svc.domain.errors import InvalidRequest

URL_LENGTH_MAX = 2_048
DESCRIPTION_LENGTH_MAX = 500
ENABLED_EVENTS_MAX = 50
EVENT_TYPE_LENGTH_MAX = 64
ENDPOINTS_PER_MERCHANT_MAX = 16
RESPONSE_SNIPPET_LENGTH_MAX = 500
ALL_EVENTS = "*"
# Waits between attempts: 1 min, 5 min, 30 min, 1 h, 2 h, 4 h, 8 h, 12 h, 16 h, 24 h
# (≈ 2.8 days; 11 attempts in all).
RETRY_DELAYS_SECONDS: tuple[int, ...] = (60, 300, 1_800, 3_600, 7_200, 14_400, 28_800, 43_200, 57_600, 86_400)
ATTEMPTS_MAX = len(RETRY_DELAYS_SECONDS) + 1


class DeliveryStatus(enum.StrEnum):
    """Delivery state (the proto's WebhookDelivery.Status names)."""

    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    DEAD_LETTERED = "DEAD_LETTERED"


@dataclasses.dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a merchant receives events."""

    id: str
    merchant_id: str
    url: str
    enabled_events: tuple[str, ...]
    secret: str
    description: str
    created_at: datetime.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class Attempt:
    """One HTTP attempt."""

    attempt_number: int
    attempted_at: datetime.datetime
    http_status: int
    latency_ms: int
    response_snippet: str = ""
    error: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Delivery:
    """One event to one endpoint, with every attempt."""

    id: str
    merchant_id: str
    endpoint_id: str
    event_id: str
    event_type: str
    status: DeliveryStatus
    attempts: tuple[Attempt, ...]
    created_at: datetime.datetime
    next_attempt_at: datetime.datetime | None
    delivered_at: datetime.datetime | None = None


def subscribed(enabled_events: Iterable[str], event_type: str) -> bool:
    """Whether an endpoint with `enabled_events` receives `event_type`."""
    events = tuple(enabled_events)
    return ALL_EVENTS in events or event_type in events


def next_attempt_at(attempts_made: int, now: datetime.datetime, scale: float) -> datetime.datetime | None:
    """When attempt `attempts_made + 1` is due, or None when the schedule is exhausted."""
    if attempts_made >= ATTEMPTS_MAX:
        return None
    delay = RETRY_DELAYS_SECONDS[attempts_made - 1] if attempts_made >= 1 else 0
    return now + datetime.timedelta(seconds=delay * scale)


def is_success(http_status: int) -> bool:
    """Any 2xx is a delivery."""
    return 200 <= http_status < 300


def record_attempt(delivery: Delivery, attempt: Attempt, scale: float) -> Delivery:
    """The delivery after `attempt`: delivered, due again later, or dead-lettered."""
    attempts = (*delivery.attempts, attempt)
    if is_success(attempt.http_status):
        return dataclasses.replace(
            delivery,
            attempts=attempts,
            status=DeliveryStatus.DELIVERED,
            next_attempt_at=None,
            delivered_at=attempt.attempted_at,
        )
    due = next_attempt_at(len(attempts), attempt.attempted_at, scale)
    status = DeliveryStatus.PENDING if due is not None else DeliveryStatus.DEAD_LETTERED
    return dataclasses.replace(delivery, attempts=attempts, status=status, next_attempt_at=due)


def validate_endpoint(
    url: str, enabled_events: Sequence[str], description: str, *, allow_private: bool
) -> tuple[str, tuple[str, ...], str]:
    """Checked URL, event types and description (HTTPS and public hosts unless `allow_private`)."""
    if not 1 <= len(url) <= URL_LENGTH_MAX:
        raise InvalidRequest("url must be 1-2048 characters", reason="INVALID_WEBHOOK_URL", field="url")
    parsed = urllib.parse.urlsplit(url)
    allowed_schemes = ("https", "http") if allow_private else ("https",)
    if parsed.scheme not in allowed_schemes or not parsed.hostname:
        raise InvalidRequest(
            "url must be an absolute https:// URL", reason="INVALID_WEBHOOK_URL", field="url"
        )
    if parsed.username or parsed.password:
        raise InvalidRequest("url must not carry credentials", reason="INVALID_WEBHOOK_URL", field="url")
    if not allow_private:
        check_public_host(parsed.hostname)
    events = tuple(dict.fromkeys(enabled_events)) or (ALL_EVENTS,)
    if len(events) > ENABLED_EVENTS_MAX or any(not 1 <= len(e) <= EVENT_TYPE_LENGTH_MAX for e in events):
        raise InvalidRequest(
            "enabled_events: at most 50 event types of 1-64 characters",
            reason="INVALID_ENABLED_EVENTS",
            field="enabled_events",
        )
    if len(description) > DESCRIPTION_LENGTH_MAX:
        raise InvalidRequest(
            "description must be at most 500 characters", reason="INVALID_DESCRIPTION", field="description"
        )
    return url, events, description


def check_public_host(host: str) -> None:
    """Refuse hosts that name a private, loopback, link-local or otherwise internal address."""
    lowered = host.lower().rstrip(".")
    if lowered == "localhost" or lowered.endswith((".localhost", ".local", ".internal")):
        raise InvalidRequest(
            "webhook targets must be public hosts", reason="WEBHOOK_TARGET_NOT_ALLOWED", field="url"
        )
    try:
        address = ipaddress.ip_address(lowered.strip("[]"))
    except ValueError:
        return
    check_public_address(str(address))


def check_public_address(address: str) -> None:
    """Refuse an internal IP address (also checked on every delivery, after DNS resolution)."""
    ip = ipaddress.ip_address(address)
    if not ip.is_global or ip.is_multicast:
        raise InvalidRequest(
            "webhook targets must be public addresses", reason="WEBHOOK_TARGET_NOT_ALLOWED", field="url"
        )
