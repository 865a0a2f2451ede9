"""Use cases around cards: tokens (delegated to the vault) and risk assessment."""

from __future__ import annotations

import datetime
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from chassis import errors
from payments_svc.adapters.risk_counters import RiskCounters
from payments_svc.adapters.vault_client import VaultClient
from payments_svc.domain import payments as model
from payments_svc.domain import risk
from payments_svc.domain.cards import Card, TokenInfo
from payments_svc.domain.merchants import Permission, validate_currency
from payments_svc.service_layer.auth import Caller
from payments_svc.service_layer.errors import translated
from payments_svc.service_layer.idempotency import Idempotency, Ticket


class CardService:
    """Tokens and risk."""

    def __init__(
        self,
        engine: AsyncEngine,
        idempotency: Idempotency,
        vault: VaultClient,
        risk_counters: RiskCounters,
        clock: Callable[[], datetime.datetime],
    ) -> None:
        self._engine = engine
        self._idempotency = idempotency
        self._vault = vault
        self._risk = risk_counters
        self._clock = clock

    async def create_token(self, caller: Caller, card: Card | None, ticket: Ticket | None) -> TokenInfo:
        """Store a card in the vault; a CVC given is held there for one later authorization."""
        merchant = caller.require(Permission.TRANSACT)
        if card is None:
            raise errors.InvalidArgument(
                "card is required",
                reason="CARD_REQUIRED",
                field_violations=[errors.FieldViolation("card", "required")],
            )
        token = await self._vault.tokenize(
            card, merchant_id=merchant.id, principal=caller.principal, hold_cvc=True, field_root="card"
        )
        if ticket is not None:
            async with self._engine.begin() as connection:
                await self._idempotency.complete(connection, ticket, token)
        return token

    async def get_token(self, caller: Caller, token_id: str) -> TokenInfo:
        """A token of the caller's merchant."""
        merchant = caller.require(Permission.READ)
        try:
            return await self._vault.token_metadata(
                token_id, merchant_id=merchant.id, principal=caller.principal
            )
        except errors.NotFound:
            raise errors.NotFound("no such token", reason="TOKEN_NOT_FOUND") from None

    async def assess(
        self,
        caller: Caller,
        *,
        amount: int,
        currency: str,
        card: Card | None,
        token: str,
        ip_address: str,
        billing_country: str,
    ) -> risk.Assessment:
        """Score a prospective payment with Confirm's rules, recording no attempt.

        A raw card is tokenized with dedupe (the fingerprint needs the vault's key), so assessing
        the same card twice does not multiply vault records.
        """
        merchant = caller.require(Permission.READ)
        with translated():
            model.validate_amount(amount)
            if currency:
                validate_currency(currency)
        fingerprint = country = ""
        if card is not None:
            info = await self._vault.tokenize(
                card,
                merchant_id=merchant.id,
                principal=caller.principal,
                hold_cvc=False,
                field_root="payment_method.card",
                dedupe=True,
            )
            fingerprint, country = info.fingerprint, info.country
        elif token:
            info = await self._vault.token_metadata(
                token, merchant_id=merchant.id, principal=caller.principal
            )
            fingerprint, country = info.fingerprint, info.country
        counts = await self._risk.read(fingerprint=fingerprint, ip_address=ip_address)
        return risk.assess(
            risk.Signals(
                amount=amount,
                card_attempts=counts.card_attempts,
                ip_attempts=counts.ip_attempts,
                card_declines=counts.card_declines,
                card_country=country,
                billing_country=billing_country,
            ),
            merchant.risk_settings,
        )
