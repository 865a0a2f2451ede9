"""Canary scan: a PAN and CVC pushed through every vault path appear nowhere except as ciphertext
(not in the database files or tables, not in log records, not in exported spans)."""

from __future__ import annotations

import io
import logging
import pathlib
import random
import re

import grpc
import pytest
import sqlalchemy as sa
from clearhouse.vault.v1 import vault_pb2

from chassis import telemetry
from tests.integration.vault.conftest import (
    CALL_TIMEOUT_SECONDS,
    SPANS,
    VaultFactory,
    luhn_complete,
    random_merchant,
)


class RawRecords(logging.Handler):
    """Keeps every record unformatted, so the PAN redactor cannot hide a leak from the scan."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(
            f"{record.getMessage()} {record.args!r} {record.__dict__!r} {record.exc_text or ''}"
        )


def canary() -> tuple[str, str]:
    number = luhn_complete("4" + "".join(random.choice("0123456789") for _ in range(14)))
    # A CVC that is no 4-digit run of the PAN (first6/last4 are stored in clear) and no year.
    while True:
        cvc = str(random.randint(3000, 9999))
        if cvc not in number:
            return number, cvc


def standalone(value: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![0-9A-Za-z]){value}(?![0-9A-Za-z])")


async def database_texts(engine: sa.ext.asyncio.AsyncEngine) -> list[str]:
    """Every row of every table as text (PostgreSQL: row::text, bytea as hex)."""
    texts: list[str] = []
    async with engine.connect() as connection:
        names = (
            await connection.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
        ).scalars()
        for name in list(names):
            rows = (await connection.execute(sa.text(f'SELECT t::text FROM "{name}" t'))).scalars()
            texts.extend(str(row) for row in rows)
    return texts


async def test_canary_pan_and_cvc_appear_nowhere_but_in_ciphertext(
    vault_factory: VaultFactory, tmp_path: pathlib.Path, database_url: str
) -> None:
    raw = RawRecords()
    formatted = io.StringIO()
    root = logging.getLogger()
    previous_level = root.level
    json_handler = telemetry.setup_logging("vault", "DEBUG", stream=formatted)
    root.addHandler(raw)
    root.setLevel(logging.DEBUG)
    number, cvc = canary()
    try:
        vault = await vault_factory()
        merchant = random_merchant()
        meta = (
            await vault.payments.Tokenize(
                vault_pb2.TokenizeRequest(
                    card=vault_pb2.Card(
                        number=number, exp_month=11, exp_year=2041, cvc=cvc, cardholder_name="Canary"
                    ),
                    merchant_id=merchant,
                ),
                timeout=CALL_TIMEOUT_SECONDS,
            )
        ).token
        assert meta.cvc_held
        revealed = await vault.reveal(meta.token, merchant)
        assert (revealed.card.number, revealed.card.cvc) == (number, cvc)
        await vault.payments.GetTokenMetadata(vault_pb2.GetTokenMetadataRequest(token=meta.token))
        # Refusals and failures with the canary in the request must not echo it either.
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await vault.payments.Tokenize(
                vault_pb2.TokenizeRequest(
                    card=vault_pb2.Card(number=number, exp_month=13, exp_year=2041, cvc=cvc),
                    merchant_id=merchant,
                )
            )
        assert number not in str(refused.value) and not standalone(cvc).search(str(refused.value))
        with pytest.raises(grpc.aio.AioRpcError):
            await vault.tools.RevealCard(
                vault_pb2.RevealCardRequest(
                    token=meta.token, purpose=vault_pb2.RevealCardRequest.AUTHORIZATION
                )
            )
        await vault.tools.RotateKey(vault_pb2.RotateKeyRequest())
        await vault.tools.RewrapTokens(vault_pb2.RewrapTokensRequest())
        assert (await vault.reveal(meta.token, merchant)).card.number == number
        assert (await vault.tools.VerifyAccessLog(vault_pb2.VerifyAccessLogRequest())).ok

        if vault.engine.dialect.name == "postgresql":
            texts = await database_texts(vault.engine)
            assert any(meta.token in text for text in texts), "the dump must include the tokens table"
            stored = "\n".join(texts)
        else:
            stored = ""
    finally:
        root.removeHandler(raw)
        root.removeHandler(json_handler)
        root.setLevel(previous_level)

    cvc_pattern = standalone(cvc)
    # Every file the test wrote: the SQLite database with its WAL/SHM, keys, certificates, traces.
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    if database_url.startswith("sqlite"):
        assert any(path.name.startswith("test.db") for path in files)
    for path in files:
        content = path.read_bytes()
        assert number.encode() not in content, path
        assert not re.search(rb"(?<![0-9A-Za-z])" + cvc.encode() + rb"(?![0-9A-Za-z])", content), path
    assert number not in stored and not cvc_pattern.search(stored)

    spans = [span.to_json() for span in SPANS.get_finished_spans()]
    assert any("RevealCard" in span for span in spans), "the server's spans were exported"
    logs = raw.texts + formatted.getvalue().splitlines()
    assert logs, "the vault and its libraries logged something (the scan is not vacuous)"
    for text in spans + logs:
        assert number not in text
        assert not cvc_pattern.search(text), text
