"""Key rotation that finishes: rotate, rewrap in batches, raise the minimum; keys outside the DB."""

from __future__ import annotations

import asyncio
import base64
import os
import pathlib
import stat

import grpc
import pytest
import sqlalchemy as sa
from clearhouse.vault.v1 import vault_pb2

from tests.integration.vault.conftest import (
    CALL_TIMEOUT_SECONDS,
    Vault,
    VaultFactory,
    random_merchant,
    random_visa,
    remote,
)
from vault_svc.adapters.orm import key_versions


def counts(reply: vault_pb2.GetKeyStatusResponse | vault_pb2.RewrapTokensResponse) -> dict[int, int]:
    return {v.version: v.records for v in reply.versions}


async def test_rotation_runs_to_completion_while_reveals_keep_working(vault: Vault) -> None:
    merchant = random_merchant()
    cards = {}
    for _ in range(7):
        number = random_visa()
        cards[(await vault.tokenize(number, merchant)).token] = number
    rotated = await vault.tools.RotateKey(vault_pb2.RotateKeyRequest(), timeout=CALL_TIMEOUT_SECONDS)
    assert rotated.current_version == 2
    for _ in range(2):
        number = random_visa()
        meta = await vault.tokenize(number, merchant)
        assert meta.key_version == 2
        cards[meta.token] = number
    status = await vault.tools.GetKeyStatus(vault_pb2.GetKeyStatusRequest())
    assert (status.current_version, status.min_decryption_version, counts(status)) == (2, 1, {1: 7, 2: 2})

    with pytest.raises(grpc.aio.AioRpcError) as early:
        await vault.tools.SetMinDecryptionVersion(
            vault_pb2.SetMinDecryptionVersionRequest(min_decryption_version=2)
        )
    assert early.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert remote(early.value).reason == "RECORDS_BELOW_MIN_VERSION"
    assert remote(early.value).metadata == {"remaining": "7"}

    async def reveal_all() -> None:
        for token, number in cards.items():
            assert (await vault.reveal(token, merchant)).card.number == number

    # Batches of 3 while reveals run concurrently: decryption never fails mid-rewrap.
    progress = []
    for _ in range(5):
        reply, _ = await asyncio.gather(
            vault.tools.RewrapTokens(
                vault_pb2.RewrapTokensRequest(batch_size=3), timeout=CALL_TIMEOUT_SECONDS
            ),
            reveal_all(),
        )
        progress.append((reply.rewrapped, reply.remaining, counts(reply)))
        if reply.remaining == 0:
            break
    assert progress == [(3, 4, {1: 4, 2: 5}), (3, 1, {1: 1, 2: 8}), (1, 0, {1: 0, 2: 9})]

    raised = await vault.tools.SetMinDecryptionVersion(
        vault_pb2.SetMinDecryptionVersionRequest(min_decryption_version=2)
    )
    assert raised.min_decryption_version == 2
    await reveal_all()
    for bad, reason in ((1, "MIN_VERSION_LOWERED"), (3, "MIN_VERSION_ABOVE_CURRENT")):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await vault.tools.SetMinDecryptionVersion(
                vault_pb2.SetMinDecryptionVersionRequest(min_decryption_version=bad)
            )
        assert remote(caught.value).reason == reason
    status = await vault.payments.GetKeyStatus(vault_pb2.GetKeyStatusRequest())
    assert (status.current_version, status.min_decryption_version, counts(status)) == (2, 2, {1: 0, 2: 9})
    log = await vault.tools.ListAccessLog(
        vault_pb2.ListAccessLogRequest(action=vault_pb2.AccessLogEntry.REWRAP)
    )
    assert len(log.data) == 3
    with pytest.raises(grpc.aio.AioRpcError) as ledger:
        await vault.ledger.RotateKey(vault_pb2.RotateKeyRequest())
    assert ledger.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_key_material_lives_in_a_0600_file_never_in_the_database(vault: Vault) -> None:
    await vault.tools.RotateKey(vault_pb2.RotateKeyRequest())
    key_file = vault.settings.resolved_key_file
    fingerprint_file = vault.settings.vault_dir / "fingerprint.key"
    for path in (key_file, fingerprint_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    async with vault.engine.connect() as connection:
        rows = (await connection.execute(sa.select(key_versions))).all()
    assert [r.version for r in rows] == [1, 2]
    import json

    materials = json.loads(key_file.read_text())["versions"]
    assert set(materials) == {"1", "2"}
    dumped = " ".join(str(tuple(r)) for r in rows)
    for material in materials.values():
        assert material not in dumped


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


async def test_configured_keys_rotate_only_to_provisioned_versions(
    vault_factory: VaultFactory, var_dir: pathlib.Path
) -> None:
    one, two = _key(), _key()
    vault = await vault_factory(keys=f"1:{one}")
    merchant = random_merchant()
    number = random_visa()
    meta = await vault.tokenize(number, merchant)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await vault.tools.RotateKey(vault_pb2.RotateKeyRequest())
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert remote(caught.value).reason == "KEY_MATERIAL_NOT_PROVISIONED"
    assert not (var_dir / "vault" / "keys.json").exists()
    await vault.running.stop(0)

    # The operator provisions version 2, restarts, rotates and rewraps.
    vault = await vault_factory(keys=f"1:{one},2:{two}")
    assert (await vault.tools.RotateKey(vault_pb2.RotateKeyRequest())).current_version == 2
    reply = await vault.tools.RewrapTokens(vault_pb2.RewrapTokensRequest())
    assert (reply.rewrapped, reply.remaining) == (1, 0)
    assert (await vault.reveal(meta.token, merchant)).card.number == number
    await vault.running.stop(0)

    # Wrong material for a version the database knows: the vault refuses to start.
    with pytest.raises(RuntimeError, match="does not match"):
        await vault_factory(keys=f"1:{one},2:{_key()}")
