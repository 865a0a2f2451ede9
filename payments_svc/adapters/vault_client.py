"""Client of the vault (`clearhouse.vault.v1.Vault`): tokenize, resolve and reveal cards.

Card data crosses this module in memory only. Errors come back as chassis errors with the
vault's stable reason; field paths are re-rooted at the caller's request field.
"""

from __future__ import annotations

import datetime

import grpc
from clearhouse.vault.v1 import vault_pb2, vault_pb2_grpc

from chassis import errors
from payments_svc.domain.cards import Card, TokenInfo

# CVCs held by the vault for the next RevealCard (only when a token is created for later use).
CVC_HOLD_SECONDS = 300


def _token(metadata: vault_pb2.TokenMetadata) -> TokenInfo:
    brand = vault_pb2.TokenMetadata.Brand.Name(metadata.brand)
    created_at = (
        metadata.created_at.ToDatetime(tzinfo=datetime.UTC) if metadata.HasField("created_at") else None
    )
    return TokenInfo(
        token=metadata.token,
        merchant_id=metadata.merchant_id,
        brand="" if brand == "BRAND_UNSPECIFIED" else brand,
        last4=metadata.last4,
        exp_month=metadata.exp_month,
        exp_year=metadata.exp_year,
        fingerprint=metadata.fingerprint,
        country=metadata.country,
        created_at=created_at,
    )


def _card_message(card: Card) -> vault_pb2.Card:
    return vault_pb2.Card(
        number=card.number,
        exp_month=card.exp_month,
        exp_year=card.exp_year,
        cvc=card.cvc,
        cardholder_name=card.cardholder_name,
    )


def _translate(error: grpc.aio.AioRpcError, field_root: str) -> errors.ClearhouseError:
    """The vault's error as ours: bad card → INVALID_ARGUMENT on our field; down → UNAVAILABLE."""
    remote = errors.from_rpc_error(error)
    if remote.code in {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION}:
        violations = [
            errors.FieldViolation(
                f"{field_root}.{v.field.removeprefix('card.')}" if field_root else v.field, v.description
            )
            for v in remote.field_violations
        ]
        return errors.InvalidArgument(
            remote.message or "invalid card",
            reason=remote.reason or "INVALID_CARD",
            field_violations=violations,
        )
    if remote.code is grpc.StatusCode.NOT_FOUND:
        return errors.NotFound("no such token", reason="TOKEN_NOT_FOUND")
    return errors.Unavailable(
        "the card vault is unavailable", reason="VAULT_UNAVAILABLE", retry_after_seconds=1.0
    )


class VaultClient:
    """Vault calls with a deadline each."""

    def __init__(self, channel: grpc.aio.Channel, timeout_seconds: float) -> None:
        self._stub = vault_pb2_grpc.VaultStub(channel)
        self._timeout_seconds = timeout_seconds

    async def tokenize(
        self,
        card: Card,
        *,
        merchant_id: str,
        principal: str,
        hold_cvc: bool,
        field_root: str = "card",
        dedupe: bool = False,
    ) -> TokenInfo:
        """Store a card; with `hold_cvc` the vault keeps its CVC for one later reveal."""
        message = _card_message(card)
        if not hold_cvc:
            message.cvc = ""
        request = vault_pb2.TokenizeRequest(
            card=message,
            merchant_id=merchant_id,
            principal=principal,
            dedupe=dedupe,
            cvc_ttl_seconds=CVC_HOLD_SECONDS if hold_cvc and card.cvc else 0,
        )
        try:
            response = await self._stub.Tokenize(request, timeout=self._timeout_seconds)
        except grpc.aio.AioRpcError as error:
            raise _translate(error, field_root) from None
        return _token(response.token)

    async def token_metadata(self, token: str, *, merchant_id: str, principal: str) -> TokenInfo:
        """A token of this merchant (another merchant's token is NOT_FOUND)."""
        request = vault_pb2.GetTokenMetadataRequest(token=token, merchant_id=merchant_id, principal=principal)
        try:
            response = await self._stub.GetTokenMetadata(request, timeout=self._timeout_seconds)
        except grpc.aio.AioRpcError as error:
            raise _translate(error, "") from None
        return _token(response.token)

    async def reveal(self, token: str, *, merchant_id: str, reference: str) -> Card:
        """The PAN (and a held CVC, once) of a token, for one authorization."""
        request = vault_pb2.RevealCardRequest(
            token=token,
            purpose=vault_pb2.RevealCardRequest.Purpose.AUTHORIZATION,
            merchant_id=merchant_id,
            reference=reference,
        )
        try:
            response = await self._stub.RevealCard(request, timeout=self._timeout_seconds)
        except grpc.aio.AioRpcError as error:
            raise _translate(error, "") from None
        card = response.card
        return Card(card.number, card.exp_month, card.exp_year, card.cvc, card.cardholder_name)

    async def key_status(self) -> vault_pb2.GetKeyStatusResponse:
        """Key versions and rotation progress (for the admin board)."""
        try:
            response: vault_pb2.GetKeyStatusResponse = await self._stub.GetKeyStatus(
                vault_pb2.GetKeyStatusRequest(), timeout=self._timeout_seconds
            )
        except grpc.aio.AioRpcError as error:
            raise _translate(error, "") from None
        return response
