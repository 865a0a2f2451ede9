"""gRPC entry point of the vault service: thin translation between protobuf and handlers.

The caller's identity is the mTLS certificate name the chassis interceptor bound to the call
context, never anything the request says about itself.
"""

from __future__ import annotations

import grpc
from clearhouse.vault.v1 import vault_pb2, vault_pb2_grpc
from google.protobuf import timestamp_pb2
from opentelemetry import trace

from chassis import context
from vault_svc.domain.access_log import Entry, Verification
from vault_svc.domain.model import Caller, KeyStatus, TokenRecord
from vault_svc.service_layer import commands
from vault_svc.service_layer.handlers import VaultService

_Meta = vault_pb2.TokenMetadata
_LogEntry = vault_pb2.AccessLogEntry


def _caller() -> Caller:
    span_context = trace.get_current_span().get_span_context()
    trace_id = format(span_context.trace_id, "032x") if span_context.is_valid else ""
    return Caller(service=context.current().peer_service, trace_id=trace_id)


def _timestamp(microseconds: int) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromMicroseconds(microseconds)
    return stamp


def _metadata(record: TokenRecord, cvc_held: bool) -> vault_pb2.TokenMetadata:
    return vault_pb2.TokenMetadata(
        token=record.token,
        merchant_id=record.merchant_id,
        brand=_Meta.Brand.Value(record.brand.value),
        last4=record.last4,
        first6=record.first6,
        exp_month=record.exp_month,
        exp_year=record.exp_year,
        fingerprint=record.fingerprint,
        cardholder_name=record.cardholder_name or "",
        country=record.country,
        key_version=record.key_version,
        cvc_held=cvc_held,
        created_at=_timestamp(record.created_at_us),
    )


def _versions(status: KeyStatus) -> list[vault_pb2.KeyVersionCount]:
    return [
        vault_pb2.KeyVersionCount(version=version, records=count)
        for version, count in sorted(status.records_per_version.items())
    ]


def _entry(entry: Entry) -> vault_pb2.AccessLogEntry:
    return vault_pb2.AccessLogEntry(
        sequence=entry.sequence,
        created_at=_timestamp(entry.created_at_us),
        actor_service=entry.actor_service,
        merchant_id=entry.merchant_id,
        principal=entry.principal,
        action=_LogEntry.Action.Value(entry.action),
        token=entry.token,
        purpose=entry.purpose,
        outcome=_LogEntry.Outcome.Value(entry.outcome),
        trace_id=entry.trace_id,
        previous_hash=entry.previous_hash,
        hash=entry.hash,
        reference=entry.reference,
    )


class VaultServicer(vault_pb2_grpc.VaultServicer):
    """gRPC `clearhouse.vault.v1.Vault`."""

    def __init__(self, service: VaultService) -> None:
        self._service = service

    async def Tokenize(  # noqa: N802
        self, request: vault_pb2.TokenizeRequest, context: grpc.aio.ServicerContext
    ) -> vault_pb2.TokenizeResponse:
        card = request.card
        result = await self._service.tokenize(
            commands.Tokenize(
                caller=_caller(),
                card=commands.CardInput(
                    number=card.number,
                    exp_month=card.exp_month,
                    exp_year=card.exp_year,
                    cvc=card.cvc,
                    cardholder_name=card.cardholder_name,
                ),
                merchant_id=request.merchant_id,
                principal=request.principal,
                dedupe=request.dedupe,
                cvc_ttl_seconds=request.cvc_ttl_seconds,
            )
        )
        return vault_pb2.TokenizeResponse(
            token=_metadata(result.record, result.cvc_held), deduplicated=result.deduplicated
        )

    async def GetTokenMetadata(  # noqa: N802
        self, request: vault_pb2.GetTokenMetadataRequest, context: grpc.aio.ServicerContext
    ) -> vault_pb2.GetTokenMetadataResponse:
        result = await self._service.get_metadata(
            commands.GetMetadata(
                caller=_caller(),
                token=request.token,
                merchant_id=request.merchant_id,
                principal=request.principal,
            )
        )
        return vault_pb2.GetTokenMetadataResponse(token=_metadata(result.record, result.cvc_held))

    async def RevealCard(  # noqa: N802
        self, request: vault_pb2.RevealCardRequest, context: grpc.aio.ServicerContext
    ) -> vault_pb2.RevealCardResponse:
        purpose = (
            ""
            if request.purpose == vault_pb2.RevealCardRequest.PURPOSE_UNSPECIFIED
            else vault_pb2.RevealCardRequest.Purpose.Name(request.purpose)
        )
        result = await self._service.reveal(
            commands.Reveal(
                caller=_caller(),
                token=request.token,
                purpose=purpose,
                merchant_id=request.merchant_id,
                reference=request.reference,
            )
        )
        record = result.record
        return vault_pb2.RevealCardResponse(
            card=vault_pb2.Card(
                number=result.number,
                exp_month=record.exp_month,
                exp_year=record.exp_year,
                cvc=result.cvc or "",
                cardholder_name=record.cardholder_name or "",
            ),
            token=_metadata(record, cvc_held=False),
        )

    async def DeleteToken(  # noqa: N802
        self, request: vault_pb2.DeleteTokenRequest, context: grpc.aio.ServicerContext
    ) -> vault_pb2.DeleteTokenResponse:
        deleted = await self._service.delete(
            commands.DeleteToken(
                caller=_caller(),
                token=request.token,
                merchant_id=request.merchant_id,
                principal=request.principal,
            )
        )
        return vault_pb2.DeleteTokenResponse(token=request.token, deleted=deleted)

    async def RotateKey(  # noqa: N802
        self, request: vault_pb2.RotateKeyRequest, context: grpc.aio.ServicerContext
    ) -> vault_pb2.RotateKeyResponse:
        return vault_pb2.RotateKeyResponse(current_version=await self._service.rotate_key(_caller()))

    async def RewrapTokens(  # noqa: N802
        self, request: vault_pb2.RewrapTokensRequest, context: grpc.aio.ServicerContext
    ) -> vault_pb2.RewrapTokensResponse:
        result = await self._service.rewrap(_caller(), request.batch_size)
        return vault_pb2.RewrapTokensResponse(
            rewrapped=result.rewrapped, remaining=result.remaining, versions=_versions(result.status)
        )

    async def GetKeyStatus(  # noqa: N802
        self, request: vault_pb2.GetKeyStatusRequest, context: grpc.aio.ServicerContext
    ) -> vault_pb2.GetKeyStatusResponse:
        status = await self._service.key_status(_caller())
        return vault_pb2.GetKeyStatusResponse(
            current_version=status.current_version,
            min_decryption_version=status.min_decryption_version,
            versions=_versions(status),
        )

    async def SetMinDecryptionVersion(  # noqa: N802
        self, request: vault_pb2.SetMinDecryptionVersionRequest, context: grpc.aio.ServicerContext
    ) -> vault_pb2.SetMinDecryptionVersionResponse:
        version = await self._service.set_min_decryption_version(_caller(), request.min_decryption_version)
        return vault_pb2.SetMinDecryptionVersionResponse(min_decryption_version=version)

    async def ListAccessLog(  # noqa: N802
        self, request: vault_pb2.ListAccessLogRequest, context: grpc.aio.ServicerContext
    ) -> vault_pb2.ListAccessLogResponse:
        action = (
            "" if request.action == _LogEntry.ACTION_UNSPECIFIED else _LogEntry.Action.Name(request.action)
        )
        page = await self._service.list_access_log(
            commands.ListAccessLog(
                caller=_caller(),
                limit=request.limit,
                starting_after=request.starting_after,
                token=request.token,
                action=action,
                actor_service=request.actor_service,
                merchant_id=request.merchant_id,
            )
        )
        return vault_pb2.ListAccessLogResponse(data=[_entry(e) for e in page.entries], has_more=page.has_more)

    async def VerifyAccessLog(  # noqa: N802
        self, request: vault_pb2.VerifyAccessLogRequest, context: grpc.aio.ServicerContext
    ) -> vault_pb2.VerifyAccessLogResponse:
        result: Verification = await self._service.verify_access_log(_caller())
        return vault_pb2.VerifyAccessLogResponse(
            ok=result.ok,
            entries_checked=result.entries_checked,
            first_tampered_sequence=result.first_tampered_sequence,
            detail=result.detail,
        )
