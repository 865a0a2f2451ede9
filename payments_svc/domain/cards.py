"""Card data as payments handles it: in memory only, for one call. Pure.

A `Card` travels from the request to the vault (Tokenize) and, for one authorization, to the
provider; it is never stored, logged or echoed. Its repr shows the last four digits only, so a
stray log line or traceback cannot leak the PAN or CVC.
"""

from __future__ import annotations

import dataclasses
import datetime

BRANDS = ("VISA", "MASTERCARD", "AMEX", "DISCOVER", "JCB", "DINERS", "UNIONPAY")


@dataclasses.dataclass(frozen=True, slots=True)
class Card:
    """Raw card data (PAN and optional CVC)."""

    number: str
    exp_month: int
    exp_year: int
    cvc: str = ""
    cardholder_name: str = ""

    def __repr__(self) -> str:
        return f"Card(last4={self.number[-4:]!r}, exp={self.exp_month:02d}/{self.exp_year})"

    __str__ = __repr__


@dataclasses.dataclass(frozen=True, slots=True)
class TokenInfo:
    """A vault token's metadata: never the PAN."""

    token: str
    merchant_id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    fingerprint: str
    country: str
    created_at: datetime.datetime | None = None
