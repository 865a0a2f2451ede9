"""Edge concerns: header allowlists, request ids, deadlines, rate limits, content negotiation.

Header rules (docs/gateway.md has the table):

* Forwarded to the backend as gRPC metadata, and nothing else: `Authorization`,
  `Idempotency-Key` (at most 255 printable ASCII characters, else 400), `X-Request-Id` (generated
  when absent), `Provider-Signature`, and `X-Forwarded-For` (the client's address as the gateway
  saw it, appended to a chain only when the gateway is configured to trust proxies in front of
  it). Trace context (`traceparent`, `tracestate`, `baggage`) travels through the OpenTelemetry
  propagator, so the gRPC client span is a child of the HTTP server span. Hop-by-hop headers,
  `grpc-*` and any internal identity header a caller might try (`x-clearhouse-*`,
  `x-peer-service`, …) are never forwarded: they are simply not on the allowlist.
* Backend response metadata → response headers: only `idempotent-replayed: true` →
  `Idempotent-Replayed: true`. Internal metadata never leaks.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
import time
from collections.abc import Sequence

import grpc
from limits import RateLimitItem, parse
from limits.aio import storage as limits_storage
from limits.aio import strategies

from chassis import context as call_context
from gateway.errors import GatewayError, invalid_field

REQUEST_ID_LENGTH_MAX = 128
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
# Printable ASCII: what gRPC allows in a text metadata value (and no control characters).
_METADATA_VALUE = re.compile(r"[\x20-\x7e]*")
_GRPC_TIMEOUT = re.compile(r"([0-9]{1,8})([HMSmun])")
_TIMEOUT_UNITS_SECONDS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
_SECONDS = re.compile(r"[0-9]{1,6}(\.[0-9]{1,6})?")

# Request header (lower case) → metadata key, for the headers forwarded verbatim.
FORWARDED_HEADERS: dict[bytes, str] = {
    b"authorization": call_context.AUTHORIZATION,
    b"idempotency-key": call_context.IDEMPOTENCY_KEY,
    b"provider-signature": call_context.PROVIDER_SIGNATURE,
}
# Response metadata key → response header, when the value is "true".
RESPONSE_FLAG_HEADERS: dict[str, bytes] = {call_context.IDEMPOTENT_REPLAYED: b"idempotent-replayed"}
TRACE_HEADERS = frozenset({b"traceparent", b"tracestate", b"baggage"})


def new_request_id() -> str:
    """A fresh request id (`req_` + 32 hex characters).

    Unique, not secret: drawn from `random` (seeded from the OS once) rather than os.urandom,
    whose system call releases the GIL on the hot path and then waits for gRPC's poller thread.
    """
    return f"req_{random.getrandbits(128):032x}"


def check_request_id(value: str) -> str:
    """A caller-supplied X-Request-Id, if it is safe to log and forward; else 400."""
    if not _REQUEST_ID.fullmatch(value):
        raise invalid_field(
            "X-Request-Id",
            f"at most {REQUEST_ID_LENGTH_MAX} characters of A-Z a-z 0-9 . _ : -",
            reason="INVALID_HEADER",
        )
    return value


def check_metadata_value(header: str, value: str) -> str:
    """A forwarded header value must be printable ASCII (gRPC text metadata)."""
    if not _METADATA_VALUE.fullmatch(value):
        raise invalid_field(header, "must be printable ASCII", reason="INVALID_HEADER")
    return value


def check_idempotency_key(value: str) -> str:
    """At most 255 printable ASCII characters, not blank."""
    check_metadata_value("Idempotency-Key", value)
    if not value.strip():
        raise invalid_field("Idempotency-Key", "must not be blank", reason="INVALID_HEADER")
    if len(value) > call_context.IDEMPOTENCY_KEY_LENGTH_MAX:
        raise invalid_field(
            "Idempotency-Key",
            f"at most {call_context.IDEMPOTENCY_KEY_LENGTH_MAX} characters",
            reason="INVALID_HEADER",
        )
    return value


def parse_timeout(grpc_timeout: str | None, x_timeout: str | None) -> float | None:
    """Seconds asked for by `grpc-timeout` (gRPC wire format, e.g. `500m`) or `X-Timeout`.

    `X-Timeout` takes the same format or plain seconds (`2.5`). Returns None when neither is set;
    400 when malformed or not positive.
    """
    for header, value in (("grpc-timeout", grpc_timeout), ("X-Timeout", x_timeout)):
        if value is None:
            continue
        match = _GRPC_TIMEOUT.fullmatch(value)
        if match:
            seconds = int(match.group(1)) * _TIMEOUT_UNITS_SECONDS[match.group(2)]
        elif header == "X-Timeout" and _SECONDS.fullmatch(value):
            seconds = float(value)
        else:
            raise invalid_field(
                header, "expected a timeout like 500m, 2S or (X-Timeout only) 2.5", reason="INVALID_HEADER"
            )
        if seconds <= 0:
            raise invalid_field(header, "must be positive", reason="INVALID_HEADER")
        return seconds
    return None


def media_type(content_type: str) -> tuple[str, dict[str, str]]:
    """`type/subtype` (lower case) and its parameters."""
    main, *params = content_type.split(";")
    parameters = {}
    for param in params:
        name, _, value = param.partition("=")
        parameters[name.strip().lower()] = value.strip().strip('"').lower()
    return main.strip().lower(), parameters


def is_json_media_type(content_type: str) -> bool:
    """application/json or application/*+json, UTF-8 (the only charset JSON allows)."""
    main, parameters = media_type(content_type)
    if main != "application/json" and not (main.startswith("application/") and main.endswith("+json")):
        return False
    charset = parameters.get("charset")
    return charset in {None, "utf-8", "utf8"}


def accepts_json(accept: str | None) -> bool:
    """True when an Accept header admits application/json (absent = anything)."""
    if accept is None or not accept.strip():
        return True
    for item in accept.split(","):
        main, parameters = media_type(item)
        quality = parameters.get("q")
        if quality is not None:
            try:
                if float(quality) <= 0:
                    continue
            except ValueError:
                continue
        if main in {"*/*", "application/*", "application/json"} or (
            main.startswith("application/") and main.endswith("+json")
        ):
            return True
    return False


def client_key(authorization: str | None, client_ip: str) -> str:
    """Rate-limit identity: a hash of the bearer credential (never the secret), else the IP."""
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return "key:" + hashlib.sha256(token.strip().encode()).hexdigest()[:32]
    return "ip:" + client_ip


class RateLimiter:
    """Per-client sliding-window limit (`limits`), in Redis when configured, else in memory."""

    def __init__(self, rate: str, redis_url: str | None) -> None:
        self.item: RateLimitItem = parse(rate)
        storage: limits_storage.Storage
        if redis_url:
            storage = limits_storage.RedisStorage(
                redis_url.replace("redis://", "async+redis://", 1)
                if redis_url.startswith("redis://")
                else redis_url,
                implementation="redispy",
                key_prefix="clearhouse:gateway:ratelimit",
                wrap_exceptions=True,
            )
        else:
            storage = limits_storage.MemoryStorage()
        self.storage = storage
        self.strategy = strategies.SlidingWindowCounterRateLimiter(storage)
        limit = self.item.amount
        self._policy_headers = [
            (b"ratelimit-limit", str(limit).encode()),
            (b"ratelimit-policy", f"{limit};w={self.item.get_expiry()}".encode()),
        ]

    async def check(self, key: str) -> list[tuple[bytes, bytes]]:
        """Count one request for `key`; the RateLimit-* headers, or GatewayError(429).

        An allowed request gets the policy headers only: remaining/reset need a second storage
        round trip (a Redis call per request), so they are computed when the limit is hit.
        """
        if await self.strategy.hit(self.item, key):
            return self._policy_headers
        stats = await self.strategy.get_window_stats(self.item, key)
        reset_seconds = max(0, math.ceil(stats.reset_time - time.time()))
        headers = [
            *self._policy_headers,
            (b"ratelimit-remaining", str(max(0, stats.remaining)).encode()),
            (b"ratelimit-reset", str(reset_seconds).encode()),
        ]
        retry_after = max(1, reset_seconds)
        raise GatewayError(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"rate limit of {self.item} exceeded for this API key; retry after {retry_after} s",
            "RATE_LIMITED",
            retry_after=float(retry_after),
            headers=[*headers, (b"retry-after", str(retry_after).encode())],
        )


def flag_headers(metadata: Sequence[tuple[str, str | bytes]] | None) -> list[tuple[bytes, bytes]]:
    """Response headers for the allowlisted backend metadata flags."""
    headers = []
    for key, value in metadata or ():
        header = RESPONSE_FLAG_HEADERS.get(key)
        if header is not None and value in {"true", b"true"}:
            headers.append((header, b"true"))
    return headers
