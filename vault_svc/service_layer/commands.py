"""Commands (inputs) and results of the vault's use cases; plain data, no protobuf."""

from __future__ import annotations

import dataclasses

from vault_svc.domain.access_log import Entry
from vault_svc.domain.model import Caller, KeyStatus, TokenRecord


@dataclasses.dataclass(frozen=True, slots=True)
class CardInput:
    """Card fields as received (unvalidated)."""

    number: str
    exp_month: int
    exp_year: int
    cvc: str = ""
    cardholder_name: str = ""

    def __repr__(self) -> str:
        # Never let a PAN or CVC reach a log line or a traceback through a repr.
        return "CardInput(<redacted>)"

    __str__ = __repr__


@dataclasses.dataclass(frozen=True, slots=True)
class Tokenize:
    """Store a card for a merchant."""

    caller: Caller
    card: CardInput
    merchant_id: str
    principal: str = ""
    dedupe: bool = False
    cvc_ttl_seconds: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class TokenizeResult:
    """The token (new or deduplicated) and whether a CVC is held for it."""

    record: TokenRecord
    deduplicated: bool
    cvc_held: bool


@dataclasses.dataclass(frozen=True, slots=True)
class GetMetadata:
    """Read a token's metadata."""

    caller: Caller
    token: str
    merchant_id: str = ""
    principal: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class MetadataResult:
    """A token's metadata."""

    record: TokenRecord
    cvc_held: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Reveal:
    """Reveal a PAN for a stated purpose (purpose "" means none was stated)."""

    caller: Caller
    token: str
    purpose: str
    merchant_id: str = ""
    reference: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class RevealResult:
    """The PAN (and the held CVC, once) with the token's metadata."""

    record: TokenRecord
    number: str
    cvc: str | None

    def __repr__(self) -> str:
        return f"RevealResult(token={self.record.token})"

    __str__ = __repr__


@dataclasses.dataclass(frozen=True, slots=True)
class DeleteToken:
    """Crypto-shred a token."""

    caller: Caller
    token: str
    merchant_id: str = ""
    principal: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class RewrapResult:
    """Progress of one rewrap batch."""

    rewrapped: int
    remaining: int
    status: KeyStatus


@dataclasses.dataclass(frozen=True, slots=True)
class ListAccessLog:
    """Filters and cursor of an access-log page."""

    caller: Caller
    limit: int = 0
    starting_after: int = 0
    token: str = ""
    action: str = ""
    actor_service: str = ""
    merchant_id: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class AccessLogPage:
    """One page, newest first."""

    entries: list[Entry]
    has_more: bool
