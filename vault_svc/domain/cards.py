"""Card validation: digits, length, Luhn, brand from IIN ranges, simulated issuing country, expiry.

Pure functions; errors name fields and rules, never the card's digits.
"""

from __future__ import annotations

import dataclasses
import enum
import re

from vault_svc.domain.errors import CardRejected, Violation

PAN_LENGTH_MIN = 12
PAN_LENGTH_MAX = 19
# A PAN typed with separators is at most 19 digits plus a separator between each.
PAN_INPUT_LENGTH_MAX = 2 * PAN_LENGTH_MAX
CARDHOLDER_NAME_LENGTH_MAX = 200
CVC_LENGTH_MIN = 3
CVC_LENGTH_MAX = 4
# Cards are not issued for longer than this; a later year is a typo, not a card.
EXPIRY_YEARS_AHEAD_MAX = 50
DEFAULT_COUNTRY = "US"

_SEPARATORS = re.compile(r"[ \-]")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


class Brand(enum.StrEnum):
    """Card networks the vault recognises (names match the contract's enum values)."""

    UNSPECIFIED = "BRAND_UNSPECIFIED"
    VISA = "VISA"
    MASTERCARD = "MASTERCARD"
    AMEX = "AMEX"
    DISCOVER = "DISCOVER"
    JCB = "JCB"
    DINERS = "DINERS"
    UNIONPAY = "UNIONPAY"


# (prefix low, prefix high, brand) over prefixes of the same length; first match wins, so the
# narrower co-branded ranges come before the wide ones.
_IIN_RANGES: tuple[tuple[str, str, Brand], ...] = (
    ("34", "34", Brand.AMEX),
    ("37", "37", Brand.AMEX),
    ("300", "305", Brand.DINERS),
    ("36", "36", Brand.DINERS),
    ("38", "39", Brand.DINERS),
    ("3528", "3589", Brand.JCB),
    ("2221", "2720", Brand.MASTERCARD),
    ("51", "55", Brand.MASTERCARD),
    ("6011", "6011", Brand.DISCOVER),
    ("644", "649", Brand.DISCOVER),
    ("65", "65", Brand.DISCOVER),
    ("62", "62", Brand.UNIONPAY),
    ("4", "4", Brand.VISA),
)

# Lengths each network issues; a PAN of another length under that brand is a typo.
_BRAND_LENGTHS: dict[Brand, frozenset[int]] = {
    Brand.VISA: frozenset({13, 16, 19}),
    Brand.MASTERCARD: frozenset({16}),
    Brand.AMEX: frozenset({15}),
    Brand.DISCOVER: frozenset(range(16, 20)),
    Brand.JCB: frozenset(range(16, 20)),
    Brand.DINERS: frozenset(range(14, 20)),
    Brand.UNIONPAY: frozenset(range(16, 20)),
    Brand.UNSPECIFIED: frozenset(range(PAN_LENGTH_MIN, PAN_LENGTH_MAX + 1)),
}

# Simulated issuing countries. Test cards `400000` + ISO 3166 numeric code + … (the published
# per-country test numbers, e.g. 4000002760003184 for DE) map to that country; a few network
# ranges have a home country; everything else is issued in the US.
_ISO_NUMERIC_COUNTRIES = {
    "036": "AU",
    "040": "AT",
    "056": "BE",
    "076": "BR",
    "124": "CA",
    "156": "CN",
    "208": "DK",
    "250": "FR",
    "276": "DE",
    "356": "IN",
    "380": "IT",
    "392": "JP",
    "484": "MX",
    "528": "NL",
    "554": "NZ",
    "578": "NO",
    "702": "SG",
    "724": "ES",
    "752": "SE",
    "756": "CH",
    "826": "GB",
    "840": "US",
}
_BRAND_HOME_COUNTRY = {Brand.JCB: "JP", Brand.UNIONPAY: "CN"}


@dataclasses.dataclass(frozen=True, slots=True)
class ValidCard:
    """A card that passed validation; `number` is digits only."""

    number: str
    exp_month: int
    exp_year: int
    brand: Brand
    country: str
    cvc: str | None
    cardholder_name: str | None

    @property
    def first6(self) -> str:
        """Issuer identification number (first six digits)."""
        return self.number[:6]

    @property
    def last4(self) -> str:
        """Last four digits."""
        return self.number[-4:]

    def __repr__(self) -> str:
        # Never let a PAN or CVC reach a log line through a repr.
        return f"ValidCard(brand={self.brand}, first6={self.first6}, last4={self.last4})"

    __str__ = __repr__


def luhn_valid(digits: str) -> bool:
    """True when `digits` (non-empty, digits only) pass the Luhn mod-10 check."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def brand_of(digits: str) -> Brand:
    """Brand from the IIN ranges (UNSPECIFIED when no range matches)."""
    for low, high, brand in _IIN_RANGES:
        prefix = digits[: len(low)]
        if len(prefix) == len(low) and low <= prefix <= high:
            return brand
    return Brand.UNSPECIFIED


def country_of(digits: str, brand: Brand) -> str:
    """Simulated issuing country (ISO 3166-1 alpha-2) of a PAN."""
    if digits.startswith("400000"):
        country = _ISO_NUMERIC_COUNTRIES.get(digits[6:9])
        if country:
            return country
    return _BRAND_HOME_COUNTRY.get(brand, DEFAULT_COUNTRY)


def normalize_number(raw: str) -> str:
    """Strip spaces and dashes."""
    return _SEPARATORS.sub("", raw)


def validate_card(
    *,
    number: str,
    exp_month: int,
    exp_year: int,
    cvc: str,
    cardholder_name: str,
    today_year: int,
    today_month: int,
    field_prefix: str = "card.",
) -> ValidCard:
    """Validate every field at once; raise CardRejected naming each invalid field."""
    violations: list[Violation] = []
    digits = normalize_number(number) if len(number) <= PAN_INPUT_LENGTH_MAX else number
    brand = Brand.UNSPECIFIED
    number_field = field_prefix + "number"
    if not digits:
        violations.append(Violation(number_field, "is required"))
    elif not (digits.isascii() and digits.isdigit()):
        violations.append(Violation(number_field, "must contain digits only (spaces and dashes allowed)"))
    elif not PAN_LENGTH_MIN <= len(digits) <= PAN_LENGTH_MAX:
        violations.append(Violation(number_field, f"must be {PAN_LENGTH_MIN}-{PAN_LENGTH_MAX} digits long"))
    elif not luhn_valid(digits):
        violations.append(Violation(number_field, "fails the Luhn check"))
    else:
        brand = brand_of(digits)
        if len(digits) not in _BRAND_LENGTHS[brand]:
            violations.append(Violation(number_field, f"length does not match the {brand.value} brand"))

    expiry_ok = True
    if not 1 <= exp_month <= 12:
        violations.append(Violation(field_prefix + "exp_month", "must be 1-12"))
        expiry_ok = False
    if not 1000 <= exp_year <= 9999:
        violations.append(Violation(field_prefix + "exp_year", "must be a four-digit year"))
        expiry_ok = False
    elif exp_year > today_year + EXPIRY_YEARS_AHEAD_MAX:
        violations.append(
            Violation(field_prefix + "exp_year", f"must be within {EXPIRY_YEARS_AHEAD_MAX} years")
        )
        expiry_ok = False
    # A card is valid through the last day of its expiry month.
    if expiry_ok and (exp_year, exp_month) < (today_year, today_month):
        violations.append(Violation(field_prefix + "exp_year", "the card has expired"))

    held_cvc: str | None = None
    if cvc:
        if not (cvc.isascii() and cvc.isdigit() and CVC_LENGTH_MIN <= len(cvc) <= CVC_LENGTH_MAX):
            violations.append(
                Violation(field_prefix + "cvc", f"must be {CVC_LENGTH_MIN}-{CVC_LENGTH_MAX} digits")
            )
        else:
            held_cvc = cvc

    name = cardholder_name.strip()
    if len(name) > CARDHOLDER_NAME_LENGTH_MAX:
        violations.append(
            Violation(
                field_prefix + "cardholder_name", f"must be at most {CARDHOLDER_NAME_LENGTH_MAX} characters"
            )
        )
    elif _CONTROL_CHARACTERS.search(name):
        violations.append(Violation(field_prefix + "cardholder_name", "must not contain control characters"))

    if violations:
        raise CardRejected(violations)
    return ValidCard(
        number=digits,
        exp_month=exp_month,
        exp_year=exp_year,
        brand=brand,
        country=country_of(digits, brand),
        cvc=held_cvc,
        cardholder_name=name or None,
    )
