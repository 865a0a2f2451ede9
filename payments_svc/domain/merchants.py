"""Merchants, API keys and what each role may do. Pure: no protobuf, no SQLAlchemy, no I/O."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import re

from chassis import money
from payments_svc.domain.errors import Forbidden, InvalidRequest

NAME_LENGTH_MAX = 200
PRINCIPAL_LENGTH_MAX = 100
# A merchant holds at most this many keys (revoked ones included), so listing needs no cursor.
API_KEYS_PER_MERCHANT_MAX = 100
DEFAULT_PRINCIPAL = "owner"
DEFAULT_PAYOUT_BANK_ACCOUNT = "000123456789"
# Fixed fees above this (minor units) are surely a typo.
FEE_FIXED_MAX = 1_000_000
BASIS_POINTS_MAX = 10_000
SCORE_MAX = 100

_COUNTRY = re.compile(r"^[A-Z]{2}$")
_BANK_ACCOUNT = re.compile(r"^[0-9]{6,34}$")


class Role(enum.StrEnum):
    """What an API key may do (the proto's ApiKey.Role names)."""

    ADMIN = "ADMIN"
    OPERATOR = "OPERATOR"
    VIEWER = "VIEWER"


class Permission(enum.Enum):
    """Families of operations guarded by roles."""

    # Read anything of the merchant.
    READ = "read"
    # Create, confirm, capture, cancel payments; tokens; refund requests and approvals.
    TRANSACT = "transact"
    # Create and revoke API keys.
    MANAGE_KEYS = "manage_keys"


_GRANTS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.OPERATOR: frozenset({Permission.READ, Permission.TRANSACT}),
    Role.VIEWER: frozenset({Permission.READ}),
}


def require(role: Role, permission: Permission) -> None:
    """Raise Forbidden unless `role` grants `permission`."""
    if permission not in _GRANTS[role]:
        raise Forbidden(
            f"an API key with role {role.value} may not do this", reason="ROLE_NOT_ALLOWED", field=None
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Pricing:
    """Percentage plus fixed fee charged per capture."""

    fee_basis_points: int = 290
    fee_fixed: int = 30

    def validate(self, field: str = "pricing") -> Pricing:
        """Return self if in range, else InvalidRequest naming the field."""
        if not 0 <= self.fee_basis_points <= BASIS_POINTS_MAX:
            raise InvalidRequest(
                "fee_basis_points must be 0-10000",
                reason="INVALID_PRICING",
                field=f"{field}.fee_basis_points",
            )
        if not 0 <= self.fee_fixed <= FEE_FIXED_MAX:
            raise InvalidRequest(
                f"fee_fixed must be 0-{FEE_FIXED_MAX}", reason="INVALID_PRICING", field=f"{field}.fee_fixed"
            )
        return self

    def fee(self, amount: int) -> int:
        """The fee on a captured `amount` (never more than the amount)."""
        return money.fee(amount, self.fee_basis_points, self.fee_fixed)


@dataclasses.dataclass(frozen=True, slots=True)
class RiskSettings:
    """A merchant's risk thresholds."""

    amount_threshold: int = 100_000
    review_score: int = 50
    block_score: int = 80

    def validate(self, field: str = "risk_settings") -> RiskSettings:
        """Return self if consistent, else InvalidRequest naming the field."""
        if not 0 < self.amount_threshold <= money.AMOUNT_MAX:
            raise InvalidRequest(
                "amount_threshold must be positive",
                reason="INVALID_RISK_SETTINGS",
                field=f"{field}.amount_threshold",
            )
        for name in ("review_score", "block_score"):
            if not 0 < getattr(self, name) <= SCORE_MAX:
                raise InvalidRequest(
                    f"{name} must be 1-100", reason="INVALID_RISK_SETTINGS", field=f"{field}.{name}"
                )
        if self.review_score > self.block_score:
            raise InvalidRequest(
                "review_score must not exceed block_score",
                reason="INVALID_RISK_SETTINGS",
                field=f"{field}.review_score",
            )
        return self


@dataclasses.dataclass(frozen=True, slots=True)
class Merchant:
    """A business taking payments."""

    id: str
    name: str
    country: str
    default_currency: str
    pricing: Pricing
    risk_settings: RiskSettings
    payout_bank_account: str
    created_at: datetime.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class ApiKey:
    """A merchant's secret key, described without its secret (only a hash is stored)."""

    id: str
    merchant_id: str
    principal: str
    role: Role
    secret_last4: str
    created_at: datetime.datetime
    revoked_at: datetime.datetime | None = None


def validate_name(name: str) -> str:
    """A display name of 1-200 characters."""
    cleaned = name.strip()
    if not 1 <= len(cleaned) <= NAME_LENGTH_MAX:
        raise InvalidRequest("name must be 1-200 characters", reason="INVALID_NAME", field="name")
    return cleaned


def validate_country(country: str, field: str = "country") -> str:
    """An ISO 3166-1 alpha-2 code, upper-cased."""
    code = country.strip().upper()
    if not _COUNTRY.match(code):
        raise InvalidRequest(
            "country must be an ISO 3166-1 alpha-2 code", reason="INVALID_COUNTRY", field=field
        )
    return code


def validate_currency(currency: str, field: str = "currency") -> str:
    """An ISO 4217 code this platform supports, upper-cased."""
    try:
        return money.validate_currency(currency)
    except money.MoneyError as error:
        raise InvalidRequest(str(error), reason="INVALID_CURRENCY", field=field) from None


def validate_principal(principal: str) -> str:
    """A principal name of 1-100 characters."""
    cleaned = principal.strip()
    if not 1 <= len(cleaned) <= PRINCIPAL_LENGTH_MAX:
        raise InvalidRequest(
            "principal must be 1-100 characters", reason="INVALID_PRINCIPAL", field="principal"
        )
    return cleaned


def validate_bank_account(account: str) -> str:
    """A simulated bank account number: 6-34 digits."""
    if not _BANK_ACCOUNT.match(account):
        raise InvalidRequest(
            "payout_bank_account must be 6-34 digits",
            reason="INVALID_BANK_ACCOUNT",
            field="payout_bank_account",
        )
    return account
