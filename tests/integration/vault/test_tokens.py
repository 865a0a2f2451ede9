"""Tokenize, metadata, reveal, delete: semantics, tenancy, CVC hold, validation without residue."""

from __future__ import annotations

import datetime
import re

import grpc
import pytest
import sqlalchemy as sa
from clearhouse.vault.v1 import vault_pb2

from tests.integration.vault.conftest import (
    CALL_TIMEOUT_SECONDS,
    Vault,
    luhn_complete,
    random_merchant,
    random_visa,
    remote,
)
from vault_svc.adapters.orm import access_log, tokens

Brand = vault_pb2.TokenMetadata.Brand


async def count_rows(vault: Vault, table: sa.Table) -> int:
    async with vault.engine.connect() as connection:
        return int((await connection.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


async def test_tokenize_returns_metadata_and_reveal_returns_the_card(vault: Vault) -> None:
    merchant = random_merchant()
    number = random_visa()
    formatted = " ".join(number[i : i + 4] for i in range(0, 16, 4))
    meta = await vault.tokenize(formatted, merchant, cardholder_name="Ada Lovelace", cvc="314")
    assert meta.token.startswith("tok_")
    assert not re.search(r"\d{12}", meta.token), "a token must look nothing like a PAN"
    assert (meta.brand, meta.last4, meta.first6) == (Brand.VISA, number[-4:], number[:6])
    assert (meta.exp_month, meta.exp_year, meta.merchant_id) == (12, 2040, merchant)
    assert len(meta.fingerprint) == 64 and number not in meta.fingerprint
    assert meta.cvc_held and meta.key_version == 1 and meta.country == "US"
    assert meta.cardholder_name == "Ada Lovelace"

    got = await vault.payments.GetTokenMetadata(
        vault_pb2.GetTokenMetadataRequest(token=meta.token, merchant_id=merchant),
        timeout=CALL_TIMEOUT_SECONDS,
    )
    assert got.token.fingerprint == meta.fingerprint and got.token.cvc_held

    revealed = await vault.reveal(meta.token, merchant)
    assert revealed.card.number == number
    assert revealed.card.cvc == "314"
    assert (revealed.card.exp_month, revealed.card.exp_year) == (12, 2040)
    # The CVC was for one authorization: the second reveal has none.
    again = await vault.reveal(meta.token, merchant)
    assert again.card.number == number and again.card.cvc == ""
    got = await vault.payments.GetTokenMetadata(
        vault_pb2.GetTokenMetadataRequest(token=meta.token), timeout=CALL_TIMEOUT_SECONDS
    )
    assert not got.token.cvc_held


async def test_same_card_same_fingerprint_and_dedupe_is_per_merchant(vault: Vault) -> None:
    merchant, other = random_merchant(), random_merchant()
    number = random_visa()
    first = await vault.tokenize(number, merchant)
    second = await vault.tokenize(number, merchant)
    assert first.token != second.token and first.fingerprint == second.fingerprint
    different = await vault.tokenize(random_visa(), merchant)
    assert different.fingerprint != first.fingerprint

    deduped = await vault.payments.Tokenize(
        vault_pb2.TokenizeRequest(
            card=vault_pb2.Card(number=number, exp_month=12, exp_year=2040), merchant_id=merchant, dedupe=True
        ),
        timeout=CALL_TIMEOUT_SECONDS,
    )
    assert deduped.deduplicated and deduped.token.token == first.token
    elsewhere = await vault.payments.Tokenize(
        vault_pb2.TokenizeRequest(
            card=vault_pb2.Card(number=number, exp_month=12, exp_year=2040), merchant_id=other, dedupe=True
        ),
        timeout=CALL_TIMEOUT_SECONDS,
    )
    assert not elsewhere.deduplicated and elsewhere.token.token not in {first.token, second.token}
    assert elsewhere.token.fingerprint == first.fingerprint


async def test_another_merchants_token_is_not_found_and_the_denial_is_logged(vault: Vault) -> None:
    merchant, intruder = random_merchant(), random_merchant()
    meta = await vault.tokenize(random_visa(), merchant)
    # One after the other (a grpc.aio call starts when created), so the log order is known.
    for call in (
        lambda: vault.payments.GetTokenMetadata(
            vault_pb2.GetTokenMetadataRequest(token=meta.token, merchant_id=intruder)
        ),
        lambda: vault.payments.RevealCard(
            vault_pb2.RevealCardRequest(
                token=meta.token, merchant_id=intruder, purpose=vault_pb2.RevealCardRequest.AUTHORIZATION
            )
        ),
        lambda: vault.payments.DeleteToken(
            vault_pb2.DeleteTokenRequest(token=meta.token, merchant_id=intruder)
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call()
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND
        assert remote(caught.value).reason == "TOKEN_NOT_FOUND"
    page = await vault.tools.ListAccessLog(vault_pb2.ListAccessLogRequest(token=meta.token))
    outcomes = [(e.action, e.outcome) for e in page.data]
    entry = vault_pb2.AccessLogEntry
    assert outcomes == [
        (entry.DELETE, entry.DENIED),
        (entry.REVEAL, entry.DENIED),
        (entry.GET_METADATA, entry.DENIED),
        (entry.TOKENIZE, entry.ALLOWED),
    ]
    # The token is untouched.
    assert (await vault.reveal(meta.token, merchant)).card.number


async def test_delete_crypto_shreds_and_later_reads_are_not_found(vault: Vault) -> None:
    merchant = random_merchant()
    meta = await vault.tokenize(random_visa(), merchant, cvc="999")
    reply = await vault.payments.DeleteToken(
        vault_pb2.DeleteTokenRequest(token=meta.token, merchant_id=merchant), timeout=CALL_TIMEOUT_SECONDS
    )
    assert reply.deleted and reply.token == meta.token
    again = await vault.payments.DeleteToken(vault_pb2.DeleteTokenRequest(token=meta.token))
    assert not again.deleted
    async with vault.engine.connect() as connection:
        row = (
            await connection.execute(
                sa.select(tokens.c.wrapped_key, tokens.c.ciphertext).where(tokens.c.token == meta.token)
            )
        ).one()
    assert row.wrapped_key is None and row.ciphertext is None
    for call in (
        lambda: vault.payments.GetTokenMetadata(vault_pb2.GetTokenMetadataRequest(token=meta.token)),
        lambda: vault.payments.RevealCard(
            vault_pb2.RevealCardRequest(token=meta.token, purpose=vault_pb2.RevealCardRequest.AUTHORIZATION)
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call()
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await vault.payments.DeleteToken(vault_pb2.DeleteTokenRequest(token="tok_01JDOESNOTEXISTXXXXXXXXXXX"))
    assert unknown.value.code() is grpc.StatusCode.NOT_FOUND


def _expired() -> tuple[int, int]:
    today = datetime.datetime.now(datetime.UTC)
    return (12, today.year - 1) if today.month == 1 else (today.month - 1, today.year)


BAD_CARDS = [
    ("letters", {"number": "4242abcd42424242"}, "card.number"),
    ("too short", {"number": luhn_complete("42424242424")}, "card.number"),
    ("too long", {"number": luhn_complete("4" * 19)}, "card.number"),
    ("bad luhn", {"number": "4242424242424241"}, "card.number"),
    ("brand length", {"number": luhn_complete("3782822463100")}, "card.number"),
    ("empty", {"number": ""}, "card.number"),
    ("month", {"exp_month": 13}, "card.exp_month"),
    ("expired", dict(zip(("exp_month", "exp_year"), _expired(), strict=True)), "card.exp_year"),
    ("cvc", {"cvc": "12a"}, "card.cvc"),
    ("name", {"cardholder_name": "x" * 201}, "card.cardholder_name"),
]


async def test_bad_input_is_invalid_argument_with_a_field_violation_and_no_record(vault: Vault) -> None:
    merchant = random_merchant()
    for label, fields, field in BAD_CARDS:
        card = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2040, **fields}
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await vault.payments.Tokenize(
                vault_pb2.TokenizeRequest(card=vault_pb2.Card(**card), merchant_id=merchant),  # type: ignore[arg-type]
                timeout=CALL_TIMEOUT_SECONDS,
            )
        error = remote(caught.value)
        assert error.code is grpc.StatusCode.INVALID_ARGUMENT, label
        assert error.reason == "CARD_INVALID", label
        assert [v.field for v in error.field_violations] == [field], label
        assert "4242424242424242" not in error.message and "4242424242424242" not in str(error.status)
    with pytest.raises(grpc.aio.AioRpcError) as missing_merchant:
        await vault.payments.Tokenize(
            vault_pb2.TokenizeRequest(
                card=vault_pb2.Card(number="4242424242424242", exp_month=1, exp_year=2040)
            )
        )
    assert [v.field for v in remote(missing_merchant.value).field_violations] == ["merchant_id"]
    assert await count_rows(vault, tokens) == 0
    # Every refused tokenize is logged, without a token.
    async with vault.engine.connect() as connection:
        rows = (await connection.execute(sa.select(access_log.c.outcome, access_log.c.token))).all()
    assert [tuple(r) for r in rows] == [("FAILED", "")] * (len(BAD_CARDS) + 1)


async def test_non_payments_callers_may_not_tokenize_ledger(vault: Vault) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await vault.ledger.Tokenize(
            vault_pb2.TokenizeRequest(
                card=vault_pb2.Card(number="4242424242424242", exp_month=1, exp_year=2040),
                merchant_id="mch_x",
            )
        )
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert remote(caught.value).reason == "CALLER_NOT_PERMITTED"
