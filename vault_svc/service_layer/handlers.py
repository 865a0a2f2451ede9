"""Use cases of the vault: authorise the caller, do the work, append the access-log entry.

Every audited use case goes through the group committer (`group_commit`): its effect and its log
entry commit in one transaction that first locks the access-log head. Tokenize, GetTokenMetadata
and RevealCard (the payment hot path) share that transaction with other callers' operations; a
refusal stages nothing and logs its DENIED/FAILED entry in the same group. Key operations and
DeleteToken run alone; a refusal rolls their work back and logs on its own. A call refused before
it is queued (authorisation, validation) logs its entry through the queue too. Domain failures
become chassis errors here, once.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chassis import db, errors, ids
from vault_svc.adapters import repository
from vault_svc.adapters.cvc_holds import CvcHolds, CvcHoldsFull
from vault_svc.adapters.keystore import KeyMaterialMissing, KeyStore
from vault_svc.adapters.orm import MERCHANT_ID_LENGTH_MAX, PRINCIPAL_LENGTH_MAX, REFERENCE_LENGTH_MAX
from vault_svc.domain import cards, envelope
from vault_svc.domain.access_log import Action, ChainVerifier, EntryDraft, Outcome, Verification
from vault_svc.domain.errors import CardRejected, CiphertextInvalid
from vault_svc.domain.model import (
    KEY_ADMIN_CALLERS,
    REVEAL_CALLERS,
    TOKEN_CALLERS,
    Caller,
    KeyStatus,
    Purpose,
    TokenRecord,
)
from vault_svc.service_layer import commands
from vault_svc.service_layer.group_commit import GroupCommitter, GroupState, Operation, log_only

T = TypeVar("T")

CVC_TTL_SECONDS_DEFAULT = 300
CVC_TTL_SECONDS_MAX = 900
REWRAP_BATCH_DEFAULT = 500
REWRAP_BATCH_MAX = 10_000
ACCESS_LOG_PAGE_DEFAULT = 100
ACCESS_LOG_PAGE_MAX = 1_000
VERIFY_BATCH_SIZE = 1_000
# Regenerating a token id that happens to contain a PAN-like digit run; one retry nearly always
# suffices, the bound only keeps the loop finite.
TOKEN_ID_ATTEMPTS_MAX = 8
_PAN_LIKE_RUN = re.compile(r"\d{12}")


class _ForeignToken(errors.NotFound):
    """Another merchant's token: NOT_FOUND to the caller, DENIED in the access log."""


def _refusal_outcome(error: errors.ClearhouseError) -> Outcome:
    """How the access log records a refused call."""
    return Outcome.DENIED if isinstance(error, errors.PermissionDenied | _ForeignToken) else Outcome.FAILED


def _not_found(token: str) -> errors.NotFound:
    return errors.NotFound("no such token", reason="TOKEN_NOT_FOUND", metadata={"token": token})


def _bounded(value: str, field: str, length_max: int) -> str:
    if len(value) > length_max:
        raise errors.InvalidArgument(
            f"{field} is too long",
            reason="FIELD_TOO_LONG",
            field_violations=[errors.FieldViolation(field, f"at most {length_max} characters")],
        )
    return value


def _now_us() -> int:
    return time.time_ns() // 1_000


def _today() -> tuple[int, int]:
    now = datetime.datetime.now(datetime.UTC)
    return now.year, now.month


class VaultService:
    """The vault's use cases, wired with storage, keys and the in-memory CVC holds."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        keystore: KeyStore,
        fingerprint_key: bytes,
        cvc_holds: CvcHolds | None = None,
        allow_plaintext_callers: bool = False,
        now_us: Callable[[], int] = _now_us,
        today: Callable[[], tuple[int, int]] = _today,
    ) -> None:
        self._engine = engine
        self._keystore = keystore
        self._fingerprint_key = fingerprint_key
        self.cvc_holds = cvc_holds or CvcHolds()
        # Plaintext (no caller identity) is a local-debugging mode; even then, never for reveal.
        self._allow_plaintext = allow_plaintext_callers
        self._now_us = now_us
        self._today = today
        # Every audited call appends to one hash chain, so writes are serial anyway; queueing them
        # here instead of in the database spares SQLite's busy-wait back-off (tail latency) and
        # PostgreSQL's row-lock queue, and lets many calls share one transaction (group commit).
        self.committer = GroupCommitter(engine, now_us=now_us, refusal_outcome=_refusal_outcome)

    def __repr__(self) -> str:
        return "VaultService()"

    async def close(self) -> None:
        """Stop the writer queue (queued calls fail UNAVAILABLE); the engine is disposed after."""
        await self.committer.close()

    # --- start-up ----------------------------------------------------------------------------

    async def initialize(self) -> None:
        """Register key version 1 on first start; refuse mismatched key material.

        Key material that does not match the versions the database was encrypted under means a
        wrong VAULT_KEYS or key file: starting anyway would make every reveal fail.
        """
        async with db.transaction(self._engine) as connection:
            await repository.lock_head(connection)
            checks = await repository.key_checks(connection)
            if not checks:
                kek = self._kek_or_fail(1, create=True)
                await repository.add_key_version(connection, 1, kek.check_value, self._now_us())
                return
        for version, check in sorted(checks.items()):
            try:
                kek = self._keystore.get(version)
            except KeyMaterialMissing:
                # Retired versions below the minimum may have been removed from configuration.
                continue
            if kek.check_value != check:
                raise RuntimeError(
                    f"vault key material for version {version} does not match the database "
                    "(wrong VAULT_KEYS or key file for this database)"
                )

    # --- authorisation and audit helpers -----------------------------------------------------

    def _authorize(self, caller: Caller, allowed: frozenset[str], reason: str) -> None:
        if caller.service is None and self._allow_plaintext and allowed is not REVEAL_CALLERS:
            return
        if caller.service is None:
            raise errors.PermissionDenied(
                "this call needs an mTLS client certificate", reason=reason, metadata={"caller": "plaintext"}
            )
        if caller.service not in allowed:
            raise errors.PermissionDenied(
                f"service {caller.service!r} may not make this call",
                reason=reason,
                metadata={"caller": caller.service},
            )

    async def _log_refusal(self, draft: EntryDraft, error: errors.ClearhouseError) -> None:
        """Append the DENIED/FAILED entry of a call refused before it reached the queue."""
        refusal = dataclasses.replace(draft, outcome=_refusal_outcome(error))
        await self.committer.submit(Operation[None](refusal=refusal, apply=log_only(refusal)))

    async def _audited(
        self,
        draft: EntryDraft,
        authorize: Callable[[], None],
        *,
        apply: Callable[[GroupState], Awaitable[tuple[T, EntryDraft]]] | None = None,
        work: Callable[[AsyncConnection], Awaitable[tuple[T, EntryDraft]]] | None = None,
        reads: str = "",
    ) -> T:
        """Authorise, then queue the operation: batched (`apply`) or alone (`work`)."""
        try:
            authorize()
        except errors.ClearhouseError as error:
            await self._log_refusal(draft, error)
            raise
        return await self.committer.submit(Operation[T](refusal=draft, apply=apply, work=work, reads=reads))

    def _kek_or_fail(self, version: int, *, create: bool = False) -> envelope.KeyEncryptionKey:
        try:
            return self._keystore.ensure(version) if create else self._keystore.get(version)
        except KeyMaterialMissing as missing:
            raise errors.FailedPrecondition(
                str(missing), reason="KEY_MATERIAL_NOT_PROVISIONED", metadata={"key_version": str(version)}
            ) from None

    @staticmethod
    def _owned_record(state: GroupState, token: str, merchant_id: str) -> TokenRecord:
        record = state.records.get(token) if token else None
        if record is None or not record.live:
            raise _not_found(token)
        if merchant_id and record.merchant_id != merchant_id:
            raise _ForeignToken("no such token", reason="TOKEN_NOT_FOUND", metadata={"token": token})
        return record

    # --- tokens ------------------------------------------------------------------------------

    async def tokenize(self, command: commands.Tokenize) -> commands.TokenizeResult:
        """Validate and store a card; optionally return this merchant's existing token for it."""
        caller = command.caller
        draft = EntryDraft(
            actor_service=caller.actor,
            action=Action.TOKENIZE,
            outcome=Outcome.ALLOWED,
            merchant_id=command.merchant_id[:MERCHANT_ID_LENGTH_MAX],
            principal=command.principal[:PRINCIPAL_LENGTH_MAX],
            trace_id=caller.trace_id,
        )
        try:
            self._authorize(caller, TOKEN_CALLERS, "CALLER_NOT_PERMITTED")
            card, ttl_seconds = self._validate_tokenize(command)
        except errors.ClearhouseError as error:
            await self._log_refusal(draft, error)
            raise
        # Everything that needs no database happens before queueing (off the serial section).
        fingerprint = envelope.fingerprint(self._fingerprint_key, card.number)
        token = self._new_token_id()
        plaintext = card.number.encode()

        async def apply(state: GroupState) -> tuple[commands.TokenizeResult, EntryDraft]:
            if command.dedupe:
                existing = await state.live_duplicate(
                    command.merchant_id, fingerprint, card.exp_month, card.exp_year
                )
                if existing is not None:
                    return commands.TokenizeResult(existing, True, False), dataclasses.replace(
                        draft, token=existing.token, reference="deduplicated"
                    )
            # Sealed under the version current inside the transaction (a rotation is serialised
            # with this group by the head lock).
            sealed = envelope.seal(self._kek_or_fail(state.current_version), token, plaintext)
            record = TokenRecord(
                token=token,
                merchant_id=command.merchant_id,
                brand=card.brand,
                first6=card.first6,
                last4=card.last4,
                exp_month=card.exp_month,
                exp_year=card.exp_year,
                fingerprint=fingerprint,
                cardholder_name=card.cardholder_name,
                country=card.country,
                key_version=sealed.key_version,
                created_at_us=self._now_us(),
                wrapped_key=sealed.wrapped_key,
                ciphertext=sealed.ciphertext,
                deleted_at_us=None,
            )
            state.stage_token(record)
            return commands.TokenizeResult(record, False, False), dataclasses.replace(draft, token=token)

        result = await self.committer.submit(Operation[commands.TokenizeResult](refusal=draft, apply=apply))
        if card.cvc is None:
            return result
        try:
            self.cvc_holds.hold(result.record.token, card.cvc, ttl_seconds)
        except CvcHoldsFull as full:
            raise errors.ResourceExhausted(
                str(full), reason="CVC_HOLDS_FULL", retry_after_seconds=1.0
            ) from None
        return dataclasses.replace(result, cvc_held=True)

    def _validate_tokenize(self, command: commands.Tokenize) -> tuple[cards.ValidCard, int]:
        violations: list[errors.FieldViolation] = []
        if not command.merchant_id:
            violations.append(errors.FieldViolation("merchant_id", "is required"))
        elif len(command.merchant_id) > MERCHANT_ID_LENGTH_MAX:
            violations.append(
                errors.FieldViolation("merchant_id", f"at most {MERCHANT_ID_LENGTH_MAX} characters")
            )
        if len(command.principal) > PRINCIPAL_LENGTH_MAX:
            violations.append(
                errors.FieldViolation("principal", f"at most {PRINCIPAL_LENGTH_MAX} characters")
            )
        if not 0 <= command.cvc_ttl_seconds <= CVC_TTL_SECONDS_MAX:
            violations.append(errors.FieldViolation("cvc_ttl_seconds", f"must be 0-{CVC_TTL_SECONDS_MAX}"))
        year, month = self._today()
        card: cards.ValidCard | None = None
        try:
            card = cards.validate_card(
                number=command.card.number,
                exp_month=command.card.exp_month,
                exp_year=command.card.exp_year,
                cvc=command.card.cvc,
                cardholder_name=command.card.cardholder_name,
                today_year=year,
                today_month=month,
            )
        except CardRejected as rejected:
            violations.extend(errors.FieldViolation(v.field, v.description) for v in rejected.violations)
        if violations or card is None:
            reason = (
                "CARD_INVALID" if any(v.field.startswith("card.") for v in violations) else "INVALID_ARGUMENT"
            )
            raise errors.InvalidArgument(
                "invalid tokenize request: " + ", ".join(v.field for v in violations),
                reason=reason,
                field_violations=violations,
            )
        return card, command.cvc_ttl_seconds or CVC_TTL_SECONDS_DEFAULT

    @staticmethod
    def _new_token_id() -> str:
        for _ in range(TOKEN_ID_ATTEMPTS_MAX):
            token = ids.new_id("tok")
            if not _PAN_LIKE_RUN.search(token):
                return token
        raise AssertionError("could not draw a token id without a PAN-like digit run")

    async def get_metadata(self, command: commands.GetMetadata) -> commands.MetadataResult:
        """A token's metadata, never its PAN."""
        draft = EntryDraft(
            actor_service=command.caller.actor,
            action=Action.GET_METADATA,
            outcome=Outcome.ALLOWED,
            merchant_id=command.merchant_id[:MERCHANT_ID_LENGTH_MAX],
            principal=command.principal[:PRINCIPAL_LENGTH_MAX],
            token=command.token[:64],
            trace_id=command.caller.trace_id,
        )

        async def apply(state: GroupState) -> tuple[TokenRecord, EntryDraft]:
            record = self._owned_record(state, command.token, command.merchant_id)
            return record, dataclasses.replace(draft, merchant_id=record.merchant_id)

        record = await self._audited(
            draft,
            lambda: self._authorize(command.caller, TOKEN_CALLERS, "CALLER_NOT_PERMITTED"),
            apply=apply,
            reads=command.token,
        )
        return commands.MetadataResult(record, self.cvc_holds.is_held(record.token))

    async def reveal(self, command: commands.Reveal) -> commands.RevealResult:
        """The PAN, to the payments service only, for a stated purpose; the held CVC once."""
        draft = EntryDraft(
            actor_service=command.caller.actor,
            action=Action.REVEAL,
            outcome=Outcome.ALLOWED,
            merchant_id=command.merchant_id[:MERCHANT_ID_LENGTH_MAX],
            token=command.token[:64],
            purpose=command.purpose,
            trace_id=command.caller.trace_id,
            reference=command.reference[:REFERENCE_LENGTH_MAX],
        )

        def authorize() -> None:
            self._authorize(command.caller, REVEAL_CALLERS, "REVEAL_NOT_PERMITTED")
            if command.purpose not in Purpose.__members__:
                raise errors.PermissionDenied(
                    "a reveal needs a stated purpose",
                    reason="PURPOSE_REQUIRED",
                    field_violations=[errors.FieldViolation("purpose", "is required")],
                )
            _bounded(command.reference, "reference", REFERENCE_LENGTH_MAX)

        async def apply(state: GroupState) -> tuple[tuple[TokenRecord, str], EntryDraft]:
            record = self._owned_record(state, command.token, command.merchant_id)
            number = self._decrypt(record, state.min_decryption_version)
            return (record, number), dataclasses.replace(draft, merchant_id=record.merchant_id)

        record, number = await self._audited(draft, authorize, apply=apply, reads=command.token)
        return commands.RevealResult(record, number, self.cvc_holds.take(record.token))

    def _decrypt(self, record: TokenRecord, minimum: int) -> str:
        assert record.wrapped_key is not None and record.ciphertext is not None
        if record.key_version < minimum:
            # Unreachable while SetMinDecryptionVersion refuses to strand rows; kept as a guard.
            raise errors.FailedPrecondition(
                "the record's key version is retired", reason="KEY_VERSION_RETIRED"
            )
        try:
            plaintext = envelope.open_sealed(
                self._kek_or_fail(record.key_version), record.token, record.wrapped_key, record.ciphertext
            )
        except CiphertextInvalid as invalid:
            raise errors.Internal(
                invalid.message, reason=invalid.reason, metadata={"token": record.token}
            ) from None
        return plaintext.decode()

    async def delete(self, command: commands.DeleteToken) -> bool:
        """Crypto-shred a token; False when it was already shredded."""
        draft = EntryDraft(
            actor_service=command.caller.actor,
            action=Action.DELETE,
            outcome=Outcome.ALLOWED,
            merchant_id=command.merchant_id[:MERCHANT_ID_LENGTH_MAX],
            principal=command.principal[:PRINCIPAL_LENGTH_MAX],
            token=command.token[:64],
            trace_id=command.caller.trace_id,
        )

        async def work(connection: AsyncConnection) -> tuple[bool, EntryDraft]:
            record = await repository.get_token(connection, command.token) if command.token else None
            if record is None:
                raise _not_found(command.token)
            if command.merchant_id and record.merchant_id != command.merchant_id:
                raise _ForeignToken(
                    "no such token", reason="TOKEN_NOT_FOUND", metadata={"token": command.token}
                )
            deleted = await repository.shred(connection, record.token, self._now_us())
            return deleted, dataclasses.replace(
                draft, merchant_id=record.merchant_id, reference="" if deleted else "already deleted"
            )

        deleted = await self._audited(
            draft, lambda: self._authorize(command.caller, TOKEN_CALLERS, "CALLER_NOT_PERMITTED"), work=work
        )
        self.cvc_holds.drop(command.token)
        return deleted

    # --- keys --------------------------------------------------------------------------------

    def _key_admin(self, caller: Caller) -> None:
        self._authorize(caller, KEY_ADMIN_CALLERS, "CALLER_NOT_PERMITTED")

    async def rotate_key(self, caller: Caller) -> int:
        """Add a key version and make it current (new records are sealed under it)."""
        draft = EntryDraft(
            actor_service=caller.actor,
            action=Action.ROTATE_KEY,
            outcome=Outcome.ALLOWED,
            trace_id=caller.trace_id,
        )

        async def work(connection: AsyncConnection) -> tuple[int, EntryDraft]:
            version = await repository.current_version(connection) + 1
            kek = self._kek_or_fail(version, create=True)
            await repository.add_key_version(connection, version, kek.check_value, self._now_us())
            return version, dataclasses.replace(draft, reference=f"key_version={version}")

        return await self._audited(draft, lambda: self._key_admin(caller), work=work)

    async def rewrap(self, caller: Caller, batch_size: int) -> commands.RewrapResult:
        """Re-wrap one batch of records under older versions with the current key."""
        draft = EntryDraft(
            actor_service=caller.actor,
            action=Action.REWRAP,
            outcome=Outcome.ALLOWED,
            trace_id=caller.trace_id,
        )

        def authorize() -> None:
            self._key_admin(caller)
            if not 0 <= batch_size <= REWRAP_BATCH_MAX:
                raise errors.InvalidArgument(
                    "batch_size is out of range",
                    reason="BATCH_SIZE_OUT_OF_RANGE",
                    field_violations=[errors.FieldViolation("batch_size", f"must be 0-{REWRAP_BATCH_MAX}")],
                )

        async def work(connection: AsyncConnection) -> tuple[commands.RewrapResult, EntryDraft]:
            current = await repository.current_version(connection)
            new_kek = self._kek_or_fail(current)
            batch = await repository.live_below(connection, current, batch_size or REWRAP_BATCH_DEFAULT)
            updates: list[tuple[str, int, int, bytes]] = []
            for record in batch:
                assert record.wrapped_key is not None
                old_kek = self._kek_or_fail(record.key_version)
                try:
                    wrapped = envelope.rewrap(old_kek, new_kek, record.token, record.wrapped_key)
                except CiphertextInvalid as invalid:
                    raise errors.Internal(
                        invalid.message, reason=invalid.reason, metadata={"token": record.token}
                    ) from None
                updates.append((record.token, record.key_version, current, wrapped))
            await repository.store_rewrapped(connection, updates)
            status = await repository.key_status(connection)
            result = commands.RewrapResult(len(updates), status.records_below(current), status)
            return result, dataclasses.replace(
                draft, reference=f"rewrapped={result.rewrapped} remaining={result.remaining}"
            )

        return await self._audited(draft, authorize, work=work)

    async def key_status(self, caller: Caller) -> KeyStatus:
        """Versions, records per version, current and minimum decryption version."""
        self._key_admin(caller)
        async with self._engine.connect() as connection:
            return await repository.key_status(connection)

    async def set_min_decryption_version(self, caller: Caller, version: int) -> int:
        """Raise the minimum decryption version; refused while any live record is below it."""
        draft = EntryDraft(
            actor_service=caller.actor,
            action=Action.SET_MIN_DECRYPTION_VERSION,
            outcome=Outcome.ALLOWED,
            trace_id=caller.trace_id,
            reference=f"min_decryption_version={version}",
        )

        async def work(connection: AsyncConnection) -> tuple[int, EntryDraft]:
            status = await repository.key_status(connection)
            field = [errors.FieldViolation("min_decryption_version", "see message")]
            if version > status.current_version:
                raise errors.FailedPrecondition(
                    "the minimum cannot exceed the current key version",
                    reason="MIN_VERSION_ABOVE_CURRENT",
                    field_violations=field,
                    metadata={"current_version": str(status.current_version)},
                )
            if version < status.min_decryption_version:
                raise errors.FailedPrecondition(
                    "the minimum decryption version is never lowered",
                    reason="MIN_VERSION_LOWERED",
                    field_violations=field,
                    metadata={"min_decryption_version": str(status.min_decryption_version)},
                )
            below = status.records_below(version)
            if below:
                raise errors.FailedPrecondition(
                    f"{below} records are still under an older key version; rewrap them first",
                    reason="RECORDS_BELOW_MIN_VERSION",
                    metadata={"remaining": str(below)},
                )
            await repository.set_min_decryption_version(connection, version)
            return version, draft

        return await self._audited(draft, lambda: self._key_admin(caller), work=work)

    # --- access log --------------------------------------------------------------------------

    async def list_access_log(self, command: commands.ListAccessLog) -> commands.AccessLogPage:
        """One page of the access log, newest first."""
        self._key_admin(command.caller)
        if not 0 <= command.limit <= ACCESS_LOG_PAGE_MAX or command.starting_after < 0:
            raise errors.InvalidArgument(
                "limit or cursor out of range",
                reason="PAGE_OUT_OF_RANGE",
                field_violations=[errors.FieldViolation("limit", f"must be 0-{ACCESS_LOG_PAGE_MAX}")],
            )
        limit = command.limit or ACCESS_LOG_PAGE_DEFAULT
        async with self._engine.connect() as connection:
            entries = await repository.list_entries(
                connection,
                limit=limit + 1,
                before_sequence=command.starting_after or None,
                token=command.token or None,
                action=command.action or None,
                actor_service=command.actor_service or None,
                merchant_id=command.merchant_id or None,
            )
        return commands.AccessLogPage(entries[:limit], len(entries) > limit)

    async def verify_access_log(self, caller: Caller) -> Verification:
        """Recompute the hash chain up to the current head; report the first break."""
        self._key_admin(caller)
        verifier = ChainVerifier()
        async with self._engine.connect() as connection:
            head_sequence, head_hash = await repository.read_head(connection)
            after = 0
            while not verifier.broken:
                batch = await repository.entries_after(connection, after, head_sequence, VERIFY_BATCH_SIZE)
                if not batch:
                    break
                verifier.feed(batch)
                after = batch[-1].sequence
        return verifier.finish(head_sequence, head_hash)
