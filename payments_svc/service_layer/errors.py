"""Domain errors → chassis errors (translated once), and errors as stored idempotent outcomes."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import grpc

from chassis import errors
from payments_svc.domain.errors import DomainError, ErrorKind

_BY_KIND: dict[ErrorKind, type[errors.ClearhouseError]] = {
    ErrorKind.INVALID_ARGUMENT: errors.InvalidArgument,
    ErrorKind.FAILED_PRECONDITION: errors.FailedPrecondition,
    ErrorKind.NOT_FOUND: errors.NotFound,
    ErrorKind.PERMISSION_DENIED: errors.PermissionDenied,
    ErrorKind.CONFLICT: errors.Aborted,
}

_BY_CODE: dict[str, type[errors.ClearhouseError]] = {
    cls.code.name: cls
    for cls in (
        errors.InvalidArgument,
        errors.FailedPrecondition,
        errors.OutOfRange,
        errors.NotFound,
        errors.AlreadyExists,
        errors.Aborted,
        errors.Unauthenticated,
        errors.PermissionDenied,
        errors.ResourceExhausted,
        errors.Unavailable,
        errors.DeadlineExceeded,
        errors.Unimplemented,
        errors.Internal,
    )
}

# Codes after which a retry may succeed: the idempotency key is left open, not completed.
TRANSIENT_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)


def to_chassis(error: DomainError) -> errors.ClearhouseError:
    """The chassis error for a domain error (same reason; a field violation for bad input)."""
    cls = _BY_KIND[error.kind]
    violations = [errors.FieldViolation(error.field, error.message)] if error.field else []
    return cls(error.message, reason=error.reason, field_violations=violations)


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Re-raise domain errors as chassis errors."""
    try:
        yield
    except DomainError as error:
        raise to_chassis(error) from None


def encode_error(error: errors.ClearhouseError) -> bytes:
    """An error as stored for idempotent replay."""
    return json.dumps(
        {
            "code": error.code.name,
            "reason": error.reason,
            "message": error.message,
            "field_violations": [[v.field, v.description] for v in error.field_violations],
            "metadata": error.metadata,
        },
        sort_keys=True,
    ).encode()


def decode_error(data: bytes) -> errors.ClearhouseError:
    """The stored error, ready to raise again (identical code, reason, message and details)."""
    stored = json.loads(data)
    cls = _BY_CODE.get(stored["code"], errors.Internal)
    return cls(
        stored["message"],
        reason=stored["reason"],
        field_violations=[errors.FieldViolation(f, d) for f, d in stored["field_violations"]],
        metadata=stored.get("metadata") or {},
    )
