"""Per-call context, filled by the server interceptor and read by handlers.

Handlers never parse transport metadata themselves: the interceptor extracts the caller's service
identity (mTLS), the bearer credential, the idempotency key and the request id into a
`CallContext` held in a context variable for the duration of the call.
"""

from __future__ import annotations

import contextvars
import dataclasses
from collections.abc import Mapping

# Metadata keys (gRPC metadata keys are lower case).
AUTHORIZATION = "authorization"
IDEMPOTENCY_KEY = "idempotency-key"
REQUEST_ID = "x-request-id"
IDEMPOTENT_REPLAYED = "idempotent-replayed"
PROVIDER_SIGNATURE = "provider-signature"
FORWARDED_FOR = "x-forwarded-for"
IDEMPOTENCY_KEY_LENGTH_MAX = 255


@dataclasses.dataclass(frozen=True, slots=True)
class CallContext:
    """Who is calling and with what request-scoped keys."""

    method: str = ""
    peer_service: str | None = None
    bearer_token: str | None = None
    idempotency_key: str | None = None
    request_id: str | None = None
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_metadata(cls, method: str, peer_service: str | None, metadata: Mapping[str, str]) -> CallContext:
        """Build the context from invocation metadata (already lower-cased keys)."""
        authorization = metadata.get(AUTHORIZATION, "")
        scheme, _, token = authorization.partition(" ")
        bearer = token.strip() if scheme.lower() == "bearer" and token.strip() else None
        return cls(
            method=method,
            peer_service=peer_service,
            bearer_token=bearer,
            idempotency_key=metadata.get(IDEMPOTENCY_KEY) or None,
            request_id=metadata.get(REQUEST_ID) or None,
            metadata=dict(metadata),
        )


_EMPTY = CallContext()
_current: contextvars.ContextVar[CallContext | None] = contextvars.ContextVar(
    "clearhouse_call_context", default=None
)


def current() -> CallContext:
    """The context of the call being handled (an empty one outside a call)."""
    return _current.get() or _EMPTY


def bind(context: CallContext) -> contextvars.Token[CallContext | None]:
    """Make `context` current; return the token to reset it."""
    return _current.set(context)


def reset(token: contextvars.Token[CallContext | None]) -> None:
    """Restore the previous context."""
    _current.reset(token)
