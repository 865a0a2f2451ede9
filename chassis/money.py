"""Money: integer minor units plus an ISO 4217 code. No floats anywhere near money.

Amounts are validated as int64 (bools and floats refused); exponents follow ISO 4217 (JPY 0,
USD 2, BHD 3). Fees round half up to the minor unit, in the platform's favour never by more than
half a unit.
"""

from __future__ import annotations

import dataclasses
import decimal
import re

INT64_MAX = 2**63 - 1
# Largest amount a single payment may carry (99,999,999,999 minor units, Stripe's bound).
AMOUNT_MAX = 99_999_999_999

# ISO 4217 minor-unit exponents of the active currencies.
_TWO_DIGITS = """
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP BYN BZD CAD
CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD
HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD
MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON
RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD
TZS UAH USD UYU UZS VES WST XCD YER ZAR ZMW ZWL
"""
_ZERO_DIGITS = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE_DIGITS = "BHD IQD JOD KWD LYD OMR TND"
_FOUR_DIGITS = "CLF UYW"
_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(_TWO_DIGITS.split(), 2),
    **dict.fromkeys(_ZERO_DIGITS.split(), 0),
    **dict.fromkeys(_THREE_DIGITS.split(), 3),
    **dict.fromkeys(_FOUR_DIGITS.split(), 4),
}
_CURRENCY_PATTERN = re.compile(r"^[A-Z]{3}$")


class MoneyError(ValueError):
    """An amount or currency is invalid; `field` names what was wrong."""

    def __init__(self, message: str, field: str = "amount") -> None:
        super().__init__(message)
        self.field = field


def currencies() -> frozenset[str]:
    """Every supported ISO 4217 code."""
    return frozenset(_EXPONENTS)


def exponent(currency: str) -> int:
    """Number of minor-unit digits of `currency` (JPY 0, USD 2, BHD 3)."""
    return _EXPONENTS[validate_currency(currency)]


def validate_currency(currency: object) -> str:
    """Return the upper-case ISO 4217 code, or raise MoneyError."""
    if not isinstance(currency, str):
        raise MoneyError("currency must be a string", "currency")
    code = currency.strip().upper()
    if not _CURRENCY_PATTERN.match(code) or code not in _EXPONENTS:
        raise MoneyError(f"unsupported currency {currency!r}", "currency")
    return code


def validate_amount(
    amount: object, *, positive: bool = True, maximum: int = INT64_MAX, field: str = "amount"
) -> int:
    """Return `amount` if it is an int in range; bools, floats and strings are refused."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise MoneyError(f"{field} must be an integer number of minor units", field)
    if positive and amount <= 0:
        raise MoneyError(f"{field} must be positive", field)
    if amount < -INT64_MAX - 1 or amount > maximum:
        raise MoneyError(f"{field} must be at most {maximum}", field)
    return amount


@dataclasses.dataclass(frozen=True, slots=True)
class Money:
    """An amount of minor units in one currency."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        validate_amount(self.amount, positive=False)
        object.__setattr__(self, "currency", validate_currency(self.currency))

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount - other.amount, self.currency)

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise MoneyError(f"cannot combine {self.currency} with {other.currency}", "currency")

    def format(self) -> str:
        """Human form, e.g. "25.00 USD", "500 JPY", "1.250 BHD"."""
        return format_amount(self.amount, self.currency)


def format_amount(amount: int, currency: str) -> str:
    """Render minor units in major units with the currency's exponent."""
    digits = exponent(currency)
    value = decimal.Decimal(validate_amount(amount, positive=False)).scaleb(-digits)
    return f"{value:.{digits}f} {currency.upper()}"


def parse_major(text: str, currency: str) -> int:
    """Parse a major-unit decimal string ("12.34") into minor units; extra precision is refused."""
    digits = exponent(currency)
    try:
        value = decimal.Decimal(text.strip())
    except (decimal.InvalidOperation, AttributeError):
        raise MoneyError(f"not a decimal amount: {text!r}") from None
    if not value.is_finite():
        raise MoneyError("amount must be finite")
    minor = value.scaleb(digits)
    if minor != minor.to_integral_value():
        raise MoneyError(f"{currency} has {digits} decimal places")
    return validate_amount(int(minor), positive=False)


def fee(amount: int, basis_points: int, fixed: int) -> int:
    """Percentage (basis points) plus fixed fee on `amount`, rounded half up; never above amount."""
    validate_amount(amount)
    if isinstance(basis_points, bool) or not 0 <= basis_points <= 10_000:
        raise MoneyError("basis points must be between 0 and 10000", "fee_basis_points")
    validate_amount(fixed, positive=False, field="fee_fixed")
    percentage = (amount * basis_points * 2 + 10_000) // 20_000
    return min(amount, percentage + fixed)
