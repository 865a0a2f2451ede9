"""Idempotency keys (DESIGN.md §3), after Brandur Leach's atomic phases with recovery points.

- `begin` inserts the key ("started", locked for the request's deadline) or finds it: a
  completed key replays its stored outcome; another method or request is
  IDEMPOTENCY_KEY_REUSED; a live lock is IDEMPOTENCY_KEY_IN_USE; a lapsed lock (the request
  died, or failed transiently) is taken over and the request runs again from its recovery point.
- Handlers complete the key *in the same transaction* as their last state change (`complete`),
  and record a recovery point in the transaction that makes an intent carry an operation.
- `guard` settles a key when the handler raised: validation errors forget the key (nothing was
  executed), transient errors leave it open for a retry or the completer, every other error is
  stored and replayed.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chassis import errors
from payments_svc.adapters import repository
from payments_svc.domain.errors import DomainError
from payments_svc.service_layer.errors import TRANSIENT_CODES, decode_error, encode_error, to_chassis

KEY_LENGTH_MAX = 255
# A request's lock on its key lasts its deadline plus this margin; the cap bounds a lock whose
# owner set no deadline.
LOCK_MARGIN_SECONDS = 1.0
LOCK_SECONDS_MAX = 120.0

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class Ticket:
    """A request that owns its idempotency key until it completes it."""

    scope: str
    key: str
    method: str
    # Serializes the handler's result into the stored response (bytes of the response message).
    encode: Callable[[Any], bytes]
    # True when this request took over a key abandoned by an earlier attempt of itself.
    resumed: bool = False
    recovery_point: str = "started"


@dataclasses.dataclass(frozen=True, slots=True)
class Replay:
    """A stored outcome to return again."""

    response: bytes | None
    error: errors.ClearhouseError | None


def lock_seconds(time_remaining_seconds: float | None, default_seconds: float) -> float:
    """How long a request holds its key: its deadline plus a margin, capped."""
    remaining = default_seconds if time_remaining_seconds is None else time_remaining_seconds
    return min(remaining + LOCK_MARGIN_SECONDS, LOCK_SECONDS_MAX)


class Idempotency:
    """Begin, complete and settle idempotency keys in this service's database."""

    def __init__(self, engine: AsyncEngine, hash_key: str, clock: Callable[[], datetime.datetime]) -> None:
        self._engine = engine
        self._hash_key = hash_key.encode()
        self._clock = clock

    def request_hash(self, method: str, request: bytes) -> str:
        """HMAC of the method and the request bytes (a request may hold card data)."""
        return hmac.new(self._hash_key, method.encode() + b"\0" + request, hashlib.sha256).hexdigest()

    async def begin(
        self,
        *,
        scope: str,
        key: str,
        method: str,
        request: bytes,
        lock_for_seconds: float,
        encode: Callable[[Any], bytes],
    ) -> Ticket | Replay:
        """Own the key (a Ticket) or learn its stored outcome (a Replay)."""
        if not 1 <= len(key) <= KEY_LENGTH_MAX:
            raise errors.InvalidArgument(
                "the idempotency key must be 1-255 characters",
                reason="IDEMPOTENCY_KEY_INVALID",
                field_violations=[errors.FieldViolation("idempotency-key", "1-255 characters")],
            )
        request_hash = self.request_hash(method, request)
        now = self._clock()
        locked_until = now + datetime.timedelta(seconds=lock_for_seconds)
        async with self._engine.begin() as connection:
            inserted = await repository.insert_idempotency_key(
                connection,
                scope=scope,
                key=key,
                method=method,
                request_hash=request_hash,
                locked_until=locked_until,
                now=now,
            )
            if inserted:
                return Ticket(scope, key, method, encode)
            record = await repository.get_idempotency_key(connection, scope, key)
            if record is None:
                # Deleted between our insert and read (its request failed validation): retry.
                raise errors.Aborted(
                    "the idempotency key changed state; retry",
                    reason="IDEMPOTENCY_KEY_IN_USE",
                    retry_after_seconds=0.1,
                )
            if record.method != method or not hmac.compare_digest(record.request_hash, request_hash):
                raise errors.FailedPrecondition(
                    "this idempotency key was used with a different request",
                    reason="IDEMPOTENCY_KEY_REUSED",
                    metadata={"idempotency_key": key[:64]},
                )
            if record.state == "completed":
                if record.response_kind == "error":
                    return Replay(None, decode_error(record.response or b"{}"))
                return Replay(record.response or b"", None)
            if record.locked_until is not None and record.locked_until > now:
                raise errors.Aborted(
                    "a request with this idempotency key is still in progress",
                    reason="IDEMPOTENCY_KEY_IN_USE",
                    retry_after_seconds=max(0.1, (record.locked_until - now).total_seconds()),
                )
            taken = await repository.take_over_idempotency_key(
                connection,
                scope,
                key,
                seen_locked_until=record.locked_until,
                locked_until=locked_until,
            )
            if not taken:
                raise errors.Aborted(
                    "a request with this idempotency key is still in progress",
                    reason="IDEMPOTENCY_KEY_IN_USE",
                    retry_after_seconds=1.0,
                )
            return Ticket(scope, key, method, encode, resumed=True, recovery_point=record.recovery_point)

    async def complete(self, connection: AsyncConnection, ticket: Ticket | None, result: Any) -> None:
        """Store the handler's result as the key's outcome, in the caller's transaction."""
        if ticket is None:
            return
        await repository.complete_idempotency_key(
            connection,
            ticket.scope,
            ticket.key,
            response_kind="ok",
            response=ticket.encode(result),
            now=self._clock(),
        )

    @staticmethod
    async def mark(connection: AsyncConnection, ticket: Ticket | None, recovery_point: str) -> None:
        """Record the recovery point reached, in the caller's transaction."""
        if ticket is not None:
            await repository.set_recovery_point(connection, ticket.scope, ticket.key, recovery_point)

    async def guard(self, ticket: Ticket, run: Callable[[], Awaitable[T]]) -> T:
        """Run the handler; settle the key if it raised (see the module docstring)."""
        try:
            return await run()
        except DomainError as error:
            translated = to_chassis(error)
            await self._settle(ticket, translated)
            raise translated from None
        except errors.ClearhouseError as error:
            await self._settle(ticket, error)
            raise
        except BaseException:
            # Crash or cancellation: leave the key for a retry or the completer.
            await self._release(ticket)
            raise

    async def _settle(self, ticket: Ticket, error: errors.ClearhouseError) -> None:
        if error.code in TRANSIENT_CODES:
            await self._release(ticket)
            return
        async with self._engine.begin() as connection:
            if error.code is grpc.StatusCode.INVALID_ARGUMENT:
                # Nothing executed yet (recovery point "started"): forget the key. Once an
                # operation is recorded the delete matches nothing and the error is stored.
                await repository.delete_idempotency_key(connection, ticket.scope, ticket.key)
            await repository.complete_idempotency_key(
                connection,
                ticket.scope,
                ticket.key,
                response_kind="error",
                response=encode_error(error),
                now=self._clock(),
            )

    async def _release(self, ticket: Ticket) -> None:
        try:
            async with self._engine.begin() as connection:
                await repository.unlock_idempotency_key(connection, ticket.scope, ticket.key)
        except Exception:
            return
