"""Stripe-style webhook signatures: header `t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`.

Used for the platform's outgoing webhooks (`Clearhouse-Signature`) and for the providers'
webhooks into the platform (`Provider-Signature`). Verification is constant-time, accepts any of
several `v1` values (secret rotation), and refuses timestamps outside the tolerance.
"""

from __future__ import annotations

import hashlib
import hmac
import time

TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    """The signature header is missing, malformed, stale or does not match; `reason` is stable."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def compute(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of "timestamp.body" under `secret`."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The signature header value for `body`."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v1={compute(secret, timestamp, body)}"


def verify(
    secret: str,
    header: str | None,
    body: bytes,
    *,
    tolerance_seconds: int = TOLERANCE_SECONDS,
    now: float | None = None,
) -> int:
    """Check `header` against `body`; return the signed timestamp or raise SignatureError."""
    if not header:
        raise SignatureError("missing signature header", "SIGNATURE_MISSING")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError("malformed signature header", "SIGNATURE_MALFORMED")
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance_seconds:
        raise SignatureError("signature timestamp outside the tolerance", "SIGNATURE_TIMESTAMP_STALE")
    expected = compute(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureError("signature does not match", "SIGNATURE_MISMATCH")
    return timestamp
