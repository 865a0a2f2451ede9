"""Domain errors: a stable reason and a kind, mapped once onto chassis errors by the service layer.

The domain stays free of gRPC: it says *what* went wrong (`PAYMENT_NOT_CAPTURABLE`) and of which
kind (invalid input, wrong state, missing); the service layer chooses the status code.
"""

from __future__ import annotations

import enum


class ErrorKind(enum.Enum):
    """Which family of failure an error belongs to."""

    INVALID_ARGUMENT = "invalid_argument"
    FAILED_PRECONDITION = "failed_precondition"
    NOT_FOUND = "not_found"
    PERMISSION_DENIED = "permission_denied"
    CONFLICT = "conflict"


class DomainError(Exception):
    """A refused operation with a stable reason and, for bad input, the field concerned."""

    kind = ErrorKind.FAILED_PRECONDITION

    def __init__(self, message: str, *, reason: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.field = field


class InvalidRequest(DomainError):
    """The request is malformed; nothing was done."""

    kind = ErrorKind.INVALID_ARGUMENT


class IllegalTransition(DomainError):
    """The resource's state does not allow the operation."""

    kind = ErrorKind.FAILED_PRECONDITION


class NotFound(DomainError):
    """No such resource for this caller."""

    kind = ErrorKind.NOT_FOUND


class Forbidden(DomainError):
    """The caller is known but its role does not allow the operation."""

    kind = ErrorKind.PERMISSION_DENIED


class Busy(DomainError):
    """Another operation on the same resource is in flight; retrying later may succeed."""

    kind = ErrorKind.CONFLICT
