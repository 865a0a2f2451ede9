"""Vault entities and policy: token records, callers, purposes, and who may call what."""

from __future__ import annotations

import dataclasses
import enum

from vault_svc.domain.cards import Brand

# Service identities (mTLS certificate names) allowed per kind of operation.
TOKEN_CALLERS = frozenset({"payments", "tools"})
REVEAL_CALLERS = frozenset({"payments"})
KEY_ADMIN_CALLERS = frozenset({"payments", "tools"})
# How the access log names a caller without a certificate (a plaintext connection).
PLAINTEXT_ACTOR = "plaintext"


class Purpose(enum.StrEnum):
    """Why a PAN is revealed (names match the contract's enum values)."""

    AUTHORIZATION = "AUTHORIZATION"
    REFUND = "REFUND"
    CARD_UPDATE = "CARD_UPDATE"


@dataclasses.dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: mTLS service identity (None on a plaintext connection) and trace id."""

    service: str | None
    trace_id: str = ""

    @property
    def actor(self) -> str:
        """The name the access log records."""
        return self.service or PLAINTEXT_ACTOR


@dataclasses.dataclass(frozen=True, slots=True)
class TokenRecord:
    """A stored card: metadata plus (while live) its sealed PAN."""

    token: str
    merchant_id: str
    brand: Brand
    first6: str
    last4: str
    exp_month: int
    exp_year: int
    fingerprint: str
    cardholder_name: str | None
    country: str
    key_version: int
    created_at_us: int
    wrapped_key: bytes | None
    ciphertext: bytes | None
    deleted_at_us: int | None

    @property
    def live(self) -> bool:
        """False once crypto-shredded."""
        return self.deleted_at_us is None and self.wrapped_key is not None

    def __repr__(self) -> str:
        return f"TokenRecord(token={self.token}, key_version={self.key_version}, live={self.live})"


@dataclasses.dataclass(frozen=True, slots=True)
class KeyStatus:
    """Key versions with live record counts, current and minimum decryption version."""

    current_version: int
    min_decryption_version: int
    records_per_version: dict[int, int]

    def records_below(self, version: int) -> int:
        """Live records wrapped under a version lower than `version`."""
        return sum(count for v, count in self.records_per_version.items() if v < version)
