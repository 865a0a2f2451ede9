"""Domain failures of the vault, each with a stable reason (translated to gRPC by the service layer).

Messages never carry card data: they name the field and the rule, never the value.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, slots=True)
class Violation:
    """One invalid field: dotted path and a description that never quotes the value."""

    field: str
    description: str


class VaultDomainError(Exception):
    """Base of the vault's domain errors."""

    reason = "VAULT_ERROR"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.reason


class CardRejected(VaultDomainError):
    """The card data is invalid (bad digits, length, Luhn, brand, expiry, CVC or name)."""

    reason = "CARD_INVALID"

    def __init__(self, violations: list[Violation]) -> None:
        assert violations, "a rejected card names at least one violation"
        super().__init__("card details are invalid: " + ", ".join(v.field for v in violations))
        self.violations = tuple(violations)


class CiphertextInvalid(VaultDomainError):
    """A record does not decrypt: its ciphertext, wrapped key or token binding was altered."""

    reason = "CIPHERTEXT_INVALID"
