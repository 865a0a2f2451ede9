"""Use cases of merchants and API keys."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from chassis import errors, ids
from payments_svc.adapters import repository
from payments_svc.domain import merchants as model
from payments_svc.domain.merchants import ApiKey, Merchant, Permission, Pricing, RiskSettings, Role
from payments_svc.service_layer.auth import Caller, hash_secret, new_secret
from payments_svc.service_layer.errors import translated
from payments_svc.service_layer.idempotency import Idempotency, Ticket


@dataclasses.dataclass(frozen=True, slots=True)
class CreateMerchant:
    """Command: a new merchant and its first (ADMIN) key."""

    name: str
    country: str
    default_currency: str
    pricing: Pricing | None = None
    risk_settings: RiskSettings | None = None
    payout_bank_account: str = ""
    principal: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class UpdateMerchant:
    """Command: change settings; None keeps the current value."""

    merchant_id: str
    pricing: Pricing | None = None
    risk_settings: RiskSettings | None = None
    payout_bank_account: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class CreatedKey:
    """A new key with its secret, returned once."""

    api_key: ApiKey
    secret: str


@dataclasses.dataclass(frozen=True, slots=True)
class CreatedMerchant:
    """A new merchant with its first key."""

    merchant: Merchant
    created_key: CreatedKey


def _new_key(merchant_id: str, principal: str, role: Role, now: datetime.datetime) -> tuple[ApiKey, str]:
    secret = new_secret()
    key = ApiKey(
        id=ids.new_id("key"),
        merchant_id=merchant_id,
        principal=principal,
        role=role,
        secret_last4=secret[-4:],
        created_at=now,
    )
    return key, secret


class MerchantService:
    """Merchants and their keys."""

    def __init__(
        self, engine: AsyncEngine, idempotency: Idempotency, clock: Callable[[], datetime.datetime]
    ) -> None:
        self._engine = engine
        self._idempotency = idempotency
        self._clock = clock

    async def create_merchant(
        self, caller: Caller, command: CreateMerchant, ticket: Ticket | None
    ) -> CreatedMerchant:
        """Create a merchant and its first ADMIN key (platform admin only)."""
        caller.require_platform()
        with translated():
            name = model.validate_name(command.name)
            country = model.validate_country(command.country)
            currency = model.validate_currency(command.default_currency, "default_currency")
            pricing = (command.pricing or Pricing()).validate()
            risk = (command.risk_settings or RiskSettings()).validate()
            bank = model.validate_bank_account(
                command.payout_bank_account or model.DEFAULT_PAYOUT_BANK_ACCOUNT
            )
            principal = model.validate_principal(command.principal or model.DEFAULT_PRINCIPAL)
        now = self._clock()
        merchant = Merchant(ids.new_id("mch"), name, country, currency, pricing, risk, bank, now)
        key, secret = _new_key(merchant.id, principal, Role.ADMIN, now)
        result = CreatedMerchant(merchant, CreatedKey(key, secret))
        async with self._engine.begin() as connection:
            await repository.insert_merchant(connection, merchant)
            await repository.insert_api_key(connection, key, hash_secret(secret))
            await self._idempotency.complete(connection, ticket, result)
        return result

    async def get_merchant(self, caller: Caller, merchant_id: str) -> Merchant:
        """A merchant: the platform admin sees any, a merchant key only its own."""
        caller.require_merchant_access(merchant_id, Permission.READ)
        async with self._engine.connect() as connection:
            merchant = await repository.get_merchant(connection, merchant_id)
        if merchant is None:
            raise errors.NotFound("no such merchant", reason="MERCHANT_NOT_FOUND")
        return merchant

    async def update_merchant(
        self, caller: Caller, command: UpdateMerchant, ticket: Ticket | None
    ) -> Merchant:
        """Change pricing, risk thresholds or the payout account (platform admin only)."""
        caller.require_platform()
        with translated():
            pricing = command.pricing.validate() if command.pricing else None
            risk = command.risk_settings.validate() if command.risk_settings else None
            bank = (
                model.validate_bank_account(command.payout_bank_account)
                if command.payout_bank_account
                else None
            )
        async with self._engine.begin() as connection:
            merchant = await repository.get_merchant(connection, command.merchant_id)
            if merchant is None:
                raise errors.NotFound("no such merchant", reason="MERCHANT_NOT_FOUND")
            merchant = dataclasses.replace(
                merchant,
                pricing=pricing or merchant.pricing,
                risk_settings=risk or merchant.risk_settings,
                payout_bank_account=bank or merchant.payout_bank_account,
            )
            await repository.update_merchant(connection, merchant)
            await self._idempotency.complete(connection, ticket, merchant)
        return merchant

    async def create_api_key(
        self, caller: Caller, merchant_id: str, principal: str, role: Role | None, ticket: Ticket | None
    ) -> CreatedKey:
        """A new key for the merchant (merchant ADMIN key or platform admin)."""
        caller.require_merchant_access(merchant_id, Permission.MANAGE_KEYS)
        with translated():
            principal = model.validate_principal(principal)
        if role is None:
            raise errors.InvalidArgument(
                "role must be ADMIN, OPERATOR or VIEWER",
                reason="INVALID_ROLE",
                field_violations=[errors.FieldViolation("role", "ADMIN, OPERATOR or VIEWER")],
            )
        key, secret = _new_key(merchant_id, principal, role, self._clock())
        result = CreatedKey(key, secret)
        async with self._engine.begin() as connection:
            if await repository.get_merchant(connection, merchant_id) is None:
                raise errors.NotFound("no such merchant", reason="MERCHANT_NOT_FOUND")
            if await repository.count_api_keys(connection, merchant_id) >= model.API_KEYS_PER_MERCHANT_MAX:
                raise errors.FailedPrecondition(
                    f"a merchant holds at most {model.API_KEYS_PER_MERCHANT_MAX} keys",
                    reason="API_KEY_LIMIT_REACHED",
                )
            await repository.insert_api_key(connection, key, hash_secret(secret))
            await self._idempotency.complete(connection, ticket, result)
        return result

    async def list_api_keys(self, caller: Caller, merchant_id: str) -> list[ApiKey]:
        """The merchant's keys, newest first, without secrets."""
        caller.require_merchant_access(merchant_id, Permission.READ)
        async with self._engine.connect() as connection:
            if await repository.get_merchant(connection, merchant_id) is None:
                raise errors.NotFound("no such merchant", reason="MERCHANT_NOT_FOUND")
            return await repository.list_api_keys(connection, merchant_id, model.API_KEYS_PER_MERCHANT_MAX)

    async def revoke_api_key(
        self, caller: Caller, merchant_id: str, key_id: str, ticket: Ticket | None
    ) -> ApiKey:
        """Revoke a key; it stops working at once (no key caches anywhere)."""
        caller.require_merchant_access(merchant_id, Permission.MANAGE_KEYS)
        async with self._engine.begin() as connection:
            if await repository.get_api_key(connection, merchant_id, key_id) is None:
                raise errors.NotFound("no such API key", reason="API_KEY_NOT_FOUND")
            await repository.revoke_api_key(connection, merchant_id, key_id, self._clock())
            key = await repository.get_api_key(connection, merchant_id, key_id)
            assert key is not None
            await self._idempotency.complete(connection, ticket, key)
        return key
