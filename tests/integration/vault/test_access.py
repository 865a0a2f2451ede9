"""Reveal authorisation (payments only, mTLS, stated purpose), the access log, and tampering."""

from __future__ import annotations

import grpc
import pytest
import sqlalchemy as sa
from clearhouse.vault.v1 import vault_pb2, vault_pb2_grpc

from tests.integration.vault.conftest import (
    CALL_TIMEOUT_SECONDS,
    Vault,
    VaultFactory,
    random_merchant,
    random_visa,
    remote,
)
from vault_svc.adapters.orm import access_log

Entry = vault_pb2.AccessLogEntry
Purpose = vault_pb2.RevealCardRequest


async def test_reveal_is_refused_to_other_identities_and_without_purpose_and_every_call_is_logged(
    vault: Vault,
) -> None:
    merchant = random_merchant()
    number = random_visa()
    meta = await vault.tokenize(number, merchant)
    request = vault_pb2.RevealCardRequest(
        token=meta.token, merchant_id=merchant, purpose=Purpose.AUTHORIZATION
    )
    for stub in (vault.tools, vault.ledger):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.RevealCard(request, timeout=CALL_TIMEOUT_SECONDS)
        assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
        assert remote(caught.value).reason == "REVEAL_NOT_PERMITTED"
        assert number not in str(remote(caught.value).status)
    with pytest.raises(grpc.aio.AioRpcError) as no_purpose:
        await vault.payments.RevealCard(
            vault_pb2.RevealCardRequest(token=meta.token, merchant_id=merchant), timeout=CALL_TIMEOUT_SECONDS
        )
    assert no_purpose.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert remote(no_purpose.value).reason == "PURPOSE_REQUIRED"

    allowed = await vault.payments.RevealCard(
        vault_pb2.RevealCardRequest(
            token=meta.token, merchant_id=merchant, purpose=Purpose.REFUND, reference="re_123"
        ),
        timeout=CALL_TIMEOUT_SECONDS,
    )
    assert allowed.card.number == number

    page = await vault.tools.ListAccessLog(
        vault_pb2.ListAccessLogRequest(token=meta.token, action=Entry.REVEAL), timeout=CALL_TIMEOUT_SECONDS
    )
    seen = [(e.actor_service, e.outcome, e.purpose, e.reference) for e in reversed(page.data)]
    assert seen == [
        ("tools", Entry.DENIED, "AUTHORIZATION", ""),
        ("ledger", Entry.DENIED, "AUTHORIZATION", ""),
        ("payments", Entry.DENIED, "", ""),
        ("payments", Entry.ALLOWED, "REFUND", "re_123"),
    ]
    for entry in page.data:
        assert len(entry.trace_id) == 32 and entry.merchant_id == merchant and entry.token == meta.token
        assert len(entry.hash) == 64
        assert number not in str(entry)


async def test_reveal_over_a_plaintext_connection_is_refused_and_logged(vault_factory: VaultFactory) -> None:
    vault = await vault_factory(CLEARHOUSE_PLAINTEXT=True)
    channel = grpc.aio.insecure_channel(vault.running.address)
    try:
        stub = vault_pb2_grpc.VaultStub(channel)
        merchant = random_merchant()
        # Local-debugging plaintext still lets a caller tokenize, never reveal.
        meta = (
            await stub.Tokenize(
                vault_pb2.TokenizeRequest(
                    card=vault_pb2.Card(number=random_visa(), exp_month=12, exp_year=2040),
                    merchant_id=merchant,
                ),
                timeout=CALL_TIMEOUT_SECONDS,
            )
        ).token
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.RevealCard(
                vault_pb2.RevealCardRequest(token=meta.token, purpose=Purpose.AUTHORIZATION),
                timeout=CALL_TIMEOUT_SECONDS,
            )
        assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
        assert remote(caught.value).reason == "REVEAL_NOT_PERMITTED"
        page = await stub.ListAccessLog(vault_pb2.ListAccessLogRequest(token=meta.token))
        assert [(e.actor_service, e.action, e.outcome) for e in page.data] == [
            ("plaintext", Entry.REVEAL, Entry.DENIED),
            ("plaintext", Entry.TOKENIZE, Entry.ALLOWED),
        ]
    finally:
        await channel.close()


async def test_access_log_filters_and_cursor(vault: Vault) -> None:
    merchant, other = random_merchant(), random_merchant()
    mine = [await vault.tokenize(random_visa(), merchant) for _ in range(5)]
    await vault.tokenize(random_visa(), other)
    for meta in mine:
        await vault.reveal(meta.token, merchant)
    collected: list[vault_pb2.AccessLogEntry] = []
    cursor = 0
    for _ in range(10):
        page = await vault.tools.ListAccessLog(
            vault_pb2.ListAccessLogRequest(merchant_id=merchant, limit=3, starting_after=cursor),
            timeout=CALL_TIMEOUT_SECONDS,
        )
        collected.extend(page.data)
        if not page.has_more:
            break
        cursor = page.data[-1].sequence
    sequences = [e.sequence for e in collected]
    assert sequences == sorted(sequences, reverse=True) and len(set(sequences)) == 10
    assert {e.merchant_id for e in collected} == {merchant}
    reveals = await vault.tools.ListAccessLog(
        vault_pb2.ListAccessLogRequest(merchant_id=merchant, action=Entry.REVEAL, actor_service="payments")
    )
    assert [e.token for e in reversed(reveals.data)] == [m.token for m in mine]
    with pytest.raises(grpc.aio.AioRpcError) as too_big:
        await vault.tools.ListAccessLog(vault_pb2.ListAccessLogRequest(limit=1001))
    assert too_big.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as ledger:
        await vault.ledger.ListAccessLog(vault_pb2.ListAccessLogRequest())
    assert ledger.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_editing_one_access_log_row_is_reported_by_verify(vault: Vault) -> None:
    merchant = random_merchant()
    metas = [await vault.tokenize(random_visa(), merchant) for _ in range(4)]
    for meta in metas:
        await vault.reveal(meta.token, merchant)
    clean = await vault.tools.VerifyAccessLog(
        vault_pb2.VerifyAccessLogRequest(), timeout=CALL_TIMEOUT_SECONDS
    )
    assert clean.ok and clean.entries_checked == 8 and clean.first_tampered_sequence == 0

    # An insider rewrites who revealed card 2 (sequence 6), straight in the database.
    async with vault.engine.begin() as connection:
        await connection.execute(
            access_log.update().where(access_log.c.sequence == 6).values(actor_service="tools")
        )
    tampered = await vault.tools.VerifyAccessLog(vault_pb2.VerifyAccessLogRequest())
    assert not tampered.ok and tampered.first_tampered_sequence == 6

    # Restoring the row but deleting another one is caught too.
    async with vault.engine.begin() as connection:
        await connection.execute(
            access_log.update().where(access_log.c.sequence == 6).values(actor_service="payments")
        )
    assert (await vault.tools.VerifyAccessLog(vault_pb2.VerifyAccessLogRequest())).ok
    async with vault.engine.begin() as connection:
        await connection.execute(sa.delete(access_log).where(access_log.c.sequence == 3))
    deleted = await vault.tools.VerifyAccessLog(vault_pb2.VerifyAccessLogRequest())
    assert not deleted.ok and deleted.first_tampered_sequence == 3
