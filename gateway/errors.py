"""One error contract for every non-2xx response: a `google.rpc.Status` as JSON.

The HTTP status comes from two tables kept here and documented in docs/gateway.md: the gRPC code
table of DESIGN.md §2 (grpc-gateway's), then an override keyed by `ErrorInfo.reason` where HTTP
has a finer answer (422 for a reused idempotency key, 405/413/415/406 for the gateway's own
refusals). The gateway's own errors are built as Status messages too, so one renderer serves both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import grpc
import orjson
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from chassis.errors import ERROR_DOMAIN, FieldViolation
from gateway.protojson import any_to_json

# gRPC code → HTTP status (DESIGN.md §2, as grpc-gateway's runtime/errors.go); others → 500.
HTTP_STATUS_BY_CODE: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}
HTTP_STATUS_FALLBACK = 500

# ErrorInfo.reason → HTTP status, where the code table is too coarse. The one place to extend.
HTTP_STATUS_BY_REASON: dict[str, int] = {
    # Same idempotency key, different request or RPC (DESIGN.md §3).
    "IDEMPOTENCY_KEY_REUSED": 422,
    # The gateway's own refusals.
    "METHOD_NOT_ALLOWED": 405,
    "NOT_ACCEPTABLE": 406,
    "REQUEST_BODY_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
}

_CODE_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}
# Backend statuses without details whose message may describe internals (addresses, stack
# traces from a proxy): the caller gets a fixed message instead.
_OPAQUE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})
_OPAQUE_MESSAGES = {
    grpc.StatusCode.UNAVAILABLE: "the service is unavailable; retry later",
    grpc.StatusCode.INTERNAL: "internal error",
    grpc.StatusCode.UNKNOWN: "internal error",
}


def code_of(status: status_pb2.Status) -> grpc.StatusCode:
    """The grpc.StatusCode of a Status (UNKNOWN for numbers outside the enum)."""
    return _CODE_BY_NUMBER.get(status.code, grpc.StatusCode.UNKNOWN)


def reason_of(status: status_pb2.Status) -> str | None:
    """The ErrorInfo.reason carried by `status`, if any."""
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    return None


def retry_after_seconds(status: status_pb2.Status) -> int | None:
    """Whole seconds from a RetryInfo detail (rounded up), if any."""
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            delay: float = info.retry_delay.seconds + info.retry_delay.nanos / 1e9
            seconds: int = math.ceil(delay)
            return max(0, seconds)
    return None


def http_status(status: status_pb2.Status) -> int:
    """The HTTP status for `status`: the reason override first, then the code table."""
    reason = reason_of(status)
    if reason is not None and reason in HTTP_STATUS_BY_REASON:
        return HTTP_STATUS_BY_REASON[reason]
    return HTTP_STATUS_BY_CODE.get(code_of(status), HTTP_STATUS_FALLBACK)


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def make_status(
    code: grpc.StatusCode,
    message: str,
    reason: str,
    *,
    field_violations: Sequence[FieldViolation] = (),
    retry_after: float | None = None,
    metadata: dict[str, str] | None = None,
) -> status_pb2.Status:
    """A Status for one of the gateway's own errors, with ErrorInfo (and BadRequest/RetryInfo)."""
    info = error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN)
    if metadata:
        info.metadata.update(metadata)
    details = [_pack(info)]
    if field_violations:
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                        for v in field_violations
                    ]
                )
            )
        )
    if retry_after is not None:
        seconds = int(retry_after)
        nanos = int((retry_after - seconds) * 1e9)
        details.append(
            _pack(
                error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=seconds, nanos=nanos))
            )
        )
    return status_pb2.Status(code=code.value[0], message=message, details=details)


class GatewayError(Exception):
    """An error the gateway answers itself (before or instead of calling the backend)."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        reason: str,
        *,
        field_violations: Sequence[FieldViolation] = (),
        retry_after: float | None = None,
        headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        super().__init__(message)
        self.status = make_status(
            code, message, reason, field_violations=field_violations, retry_after=retry_after
        )
        self.headers = tuple(headers)


def invalid_field(field: str, description: str, reason: str = "INVALID_REQUEST_FIELD") -> GatewayError:
    """400 naming one field (body, query parameter, path variable or header)."""
    return GatewayError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"invalid request: {field}: {description}",
        reason,
        field_violations=[FieldViolation(field, description)],
    )


def from_backend(status: status_pb2.Status) -> status_pb2.Status:
    """A backend status made safe and complete for a client.

    A status without details (the channel's own failures: connection refused, deadline) gets a
    fixed message where the original could describe internals, and an ErrorInfo whose reason is
    the code name, so every error body carries a reason. Details are kept as they are, all of them.
    """
    if status.details:
        return status
    code = code_of(status)
    message = _OPAQUE_MESSAGES.get(code, status.message) if code in _OPAQUE_CODES else status.message
    return make_status(code, message or code.name.lower().replace("_", " "), code.name)


def render(status: status_pb2.Status) -> bytes:
    """The JSON body of an error response."""
    body = {
        "code": status.code,
        "message": status.message,
        "details": [any_to_json(detail) for detail in status.details],
    }
    return orjson.dumps(body)
