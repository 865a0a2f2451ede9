"""The hash-chained access log: entry shape, canonical hashing and chain verification.

Each entry's hash is SHA-256 over a canonical JSON of its fields and the previous entry's hash,
so editing, deleting or reordering any entry breaks the chain from that point on.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from collections.abc import Iterable


class Action(enum.StrEnum):
    """What was done (names match the contract's enum values)."""

    TOKENIZE = "TOKENIZE"
    GET_METADATA = "GET_METADATA"
    REVEAL = "REVEAL"
    DELETE = "DELETE"
    ROTATE_KEY = "ROTATE_KEY"
    REWRAP = "REWRAP"
    SET_MIN_DECRYPTION_VERSION = "SET_MIN_DECRYPTION_VERSION"


class Outcome(enum.StrEnum):
    """How the call ended."""

    ALLOWED = "ALLOWED"
    DENIED = "DENIED"
    FAILED = "FAILED"


@dataclasses.dataclass(frozen=True, slots=True)
class EntryDraft:
    """An entry before it is placed in the chain (no sequence, time or hashes yet)."""

    actor_service: str
    action: Action
    outcome: Outcome
    merchant_id: str = ""
    principal: str = ""
    token: str = ""
    purpose: str = ""
    trace_id: str = ""
    reference: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """A chained entry as stored."""

    sequence: int
    created_at_us: int
    actor_service: str
    merchant_id: str
    principal: str
    action: str
    token: str
    purpose: str
    outcome: str
    trace_id: str
    reference: str
    previous_hash: str
    hash: str


def compute_hash(
    *,
    sequence: int,
    created_at_us: int,
    actor_service: str,
    merchant_id: str,
    principal: str,
    action: str,
    token: str,
    purpose: str,
    outcome: str,
    trace_id: str,
    reference: str,
    previous_hash: str,
) -> str:
    """SHA-256 (hex) of the canonical JSON of an entry's fields and its predecessor's hash."""
    canonical = json.dumps(
        [
            sequence,
            created_at_us,
            actor_service,
            merchant_id,
            principal,
            action,
            token,
            purpose,
            outcome,
            trace_id,
            reference,
            previous_hash,
        ],
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def chain(draft: EntryDraft, *, sequence: int, created_at_us: int, previous_hash: str) -> Entry:
    """Place `draft` after the entry whose hash is `previous_hash`."""
    fields = {
        "sequence": sequence,
        "created_at_us": created_at_us,
        "actor_service": draft.actor_service,
        "merchant_id": draft.merchant_id,
        "principal": draft.principal,
        "action": draft.action.value,
        "token": draft.token,
        "purpose": draft.purpose,
        "outcome": draft.outcome.value,
        "trace_id": draft.trace_id,
        "reference": draft.reference,
        "previous_hash": previous_hash,
    }
    return Entry(**fields, hash=compute_hash(**fields))  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True, slots=True)
class Verification:
    """Result of recomputing the chain."""

    ok: bool
    entries_checked: int
    first_tampered_sequence: int
    detail: str


class ChainVerifier:
    """Feeds entries in sequence order; remembers the first break."""

    def __init__(self) -> None:
        self.checked = 0
        self._previous_hash = ""
        self._previous_sequence = 0
        self.first_tampered = 0
        self.detail = ""

    @property
    def broken(self) -> bool:
        """True once a break was found."""
        return self.first_tampered != 0

    def feed(self, entries: Iterable[Entry]) -> None:
        """Check the next entries (stops at the first break)."""
        for entry in entries:
            if self.broken:
                return
            self.checked += 1
            expected_sequence = self._previous_sequence + 1
            if entry.sequence != expected_sequence:
                self._fail(expected_sequence, f"entry {expected_sequence} is missing")
            elif entry.previous_hash != self._previous_hash:
                self._fail(entry.sequence, f"entry {entry.sequence} does not link to its predecessor")
            elif entry.hash != _recompute(entry):
                self._fail(entry.sequence, f"entry {entry.sequence} does not match its hash")
            self._previous_hash = entry.hash
            self._previous_sequence = entry.sequence

    def finish(self, head_sequence: int, head_hash: str) -> Verification:
        """Compare the end of the chain with the recorded head (catches truncation)."""
        if not self.broken and (head_sequence != self._previous_sequence or head_hash != self._previous_hash):
            self._fail(
                min(head_sequence, self._previous_sequence + 1) or 1,
                f"the log ends at {self._previous_sequence} but its head records {head_sequence}",
            )
        if self.broken:
            return Verification(False, self.checked, self.first_tampered, self.detail)
        return Verification(True, self.checked, 0, f"{self.checked} entries verified")

    def _fail(self, sequence: int, detail: str) -> None:
        self.first_tampered = sequence
        self.detail = detail


def _recompute(entry: Entry) -> str:
    return compute_hash(
        sequence=entry.sequence,
        created_at_us=entry.created_at_us,
        actor_service=entry.actor_service,
        merchant_id=entry.merchant_id,
        principal=entry.principal,
        action=entry.action,
        token=entry.token,
        purpose=entry.purpose,
        outcome=entry.outcome,
        trace_id=entry.trace_id,
        reference=entry.reference,
        previous_hash=entry.previous_hash,
    )
