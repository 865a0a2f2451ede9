"""Domain errors with stable reasons, translated once into gRPC statuses with google.rpc details.

Domain code raises a `ClearhouseError` subclass with a stable `reason` (ErrorInfo.reason, e.g.
`PAYMENT_NOT_CAPTURABLE`); the server interceptor turns it into a `google.rpc.Status` carrying
ErrorInfo, BadRequest field violations and RetryInfo. Clients (payments calling the vault, the
gateway) turn an `AioRpcError` back into the same shape with `from_rpc_error`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

ERROR_DOMAIN = "clearhouse.dev"


@dataclasses.dataclass(frozen=True, slots=True)
class FieldViolation:
    """One invalid field of a request: `field` is a dotted path (`payment_method.card.number`)."""

    field: str
    description: str


class ClearhouseError(Exception):
    """Base of every error that crosses a service boundary with a stable reason."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    default_reason = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        field_violations: Sequence[FieldViolation] = (),
        retry_after_seconds: float | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.field_violations = tuple(field_violations)
        self.retry_after_seconds = retry_after_seconds
        self.metadata = dict(metadata or {})

    def to_status(self) -> status_pb2.Status:
        """This error as a google.rpc.Status with its details."""
        details: list[any_pb2.Any] = []
        info = error_details_pb2.ErrorInfo(reason=self.reason, domain=ERROR_DOMAIN)
        info.metadata.update(self.metadata)
        details.append(_pack(info))
        if self.field_violations:
            bad_request = error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                    for v in self.field_violations
                ]
            )
            details.append(_pack(bad_request))
        if self.retry_after_seconds is not None:
            seconds = int(self.retry_after_seconds)
            nanos = int((self.retry_after_seconds - seconds) * 1e9)
            retry = error_details_pb2.RetryInfo(
                retry_delay=duration_pb2.Duration(seconds=seconds, nanos=nanos)
            )
            details.append(_pack(retry))
        return status_pb2.Status(code=self.code.value[0], message=self.message, details=details)

    def to_grpc_status(self) -> grpc.Status:
        """This error as a grpc.Status, ready for `context.abort_with_status`."""
        return rpc_status.to_status(self.to_status())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reason={self.reason!r}, message={self.message!r})"


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


class InvalidArgument(ClearhouseError):
    """The request is malformed; nothing was done."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    default_reason = "INVALID_ARGUMENT"


class FailedPrecondition(ClearhouseError):
    """The resource is not in a state that allows the operation (illegal transition)."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = "FAILED_PRECONDITION"


class OutOfRange(ClearhouseError):
    """A value is valid in form but outside what the resource allows."""

    code = grpc.StatusCode.OUT_OF_RANGE
    default_reason = "OUT_OF_RANGE"


class NotFound(ClearhouseError):
    """No such resource for this caller (another tenant's resources are NOT_FOUND too)."""

    code = grpc.StatusCode.NOT_FOUND
    default_reason = "NOT_FOUND"


class AlreadyExists(ClearhouseError):
    """The resource already exists."""

    code = grpc.StatusCode.ALREADY_EXISTS
    default_reason = "ALREADY_EXISTS"


class Aborted(ClearhouseError):
    """A concurrent operation got in the way; retrying may succeed."""

    code = grpc.StatusCode.ABORTED
    default_reason = "ABORTED"


class Unauthenticated(ClearhouseError):
    """The caller's credentials are missing, malformed or revoked."""

    code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = "UNAUTHENTICATED"


class PermissionDenied(ClearhouseError):
    """The caller is known but may not do this."""

    code = grpc.StatusCode.PERMISSION_DENIED
    default_reason = "PERMISSION_DENIED"


class ResourceExhausted(ClearhouseError):
    """A limit was reached (rate limit, quota)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = "RESOURCE_EXHAUSTED"


class Unavailable(ClearhouseError):
    """A dependency is down; retry later."""

    code = grpc.StatusCode.UNAVAILABLE
    default_reason = "UNAVAILABLE"


class DeadlineExceeded(ClearhouseError):
    """The deadline passed before the work finished."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED
    default_reason = "DEADLINE_EXCEEDED"


class Unimplemented(ClearhouseError):
    """The RPC is not implemented."""

    code = grpc.StatusCode.UNIMPLEMENTED
    default_reason = "UNIMPLEMENTED"


class Internal(ClearhouseError):
    """An unexpected failure; the message never carries internal details."""

    code = grpc.StatusCode.INTERNAL
    default_reason = "INTERNAL"


_BY_CODE: dict[grpc.StatusCode, type[ClearhouseError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        FailedPrecondition,
        OutOfRange,
        NotFound,
        AlreadyExists,
        Aborted,
        Unauthenticated,
        PermissionDenied,
        ResourceExhausted,
        Unavailable,
        DeadlineExceeded,
        Unimplemented,
        Internal,
    )
}


@dataclasses.dataclass(frozen=True, slots=True)
class RemoteError:
    """What a client learns from a failed RPC: code, message and the google.rpc details."""

    code: grpc.StatusCode
    message: str
    reason: str | None
    metadata: dict[str, str]
    field_violations: tuple[FieldViolation, ...]
    retry_after_seconds: float | None
    status: status_pb2.Status

    def to_error(self) -> ClearhouseError:
        """Re-raise-able domain error with the same code, reason and details."""
        cls = _BY_CODE.get(self.code, Internal)
        return cls(
            self.message,
            reason=self.reason,
            field_violations=self.field_violations,
            retry_after_seconds=self.retry_after_seconds,
            metadata=self.metadata,
        )


def status_from_rpc_error(error: grpc.RpcError) -> status_pb2.Status:
    """The google.rpc.Status of a failed call (synthesised when the server sent no details)."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is not None:
        return status
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else ""
    return status_pb2.Status(code=code.value[0], message=details or "")


def from_rpc_error(error: grpc.RpcError) -> RemoteError:
    """Parse a failed call's status and details."""
    status = status_from_rpc_error(error)
    code = next((c for c in grpc.StatusCode if c.value[0] == status.code), grpc.StatusCode.UNKNOWN)
    reason: str | None = None
    metadata: dict[str, str] = {}
    violations: list[FieldViolation] = []
    retry_after: float | None = None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
            metadata = dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations.extend(FieldViolation(v.field, v.description) for v in bad_request.field_violations)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            retry_after = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
    return RemoteError(code, status.message, reason, metadata, tuple(violations), retry_after, status)


def internal_status(message: str = "internal error") -> status_pb2.Status:
    """A bare INTERNAL status for unexpected failures (no internal detail leaks)."""
    return Internal(message).to_status()


__all__ = [
    "ERROR_DOMAIN",
    "Aborted",
    "AlreadyExists",
    "ClearhouseError",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "RemoteError",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "code_pb2",
    "from_rpc_error",
    "internal_status",
    "status_from_rpc_error",
]
