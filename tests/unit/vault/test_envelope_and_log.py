"""Envelope encryption bindings, fingerprints, key store, CVC holds and the access-log chain."""

from __future__ import annotations

import base64
import dataclasses
import os
import pathlib
import stat

import pytest

from vault_svc.adapters.cvc_holds import CvcHolds, CvcHoldsFull
from vault_svc.adapters.keystore import KeyMaterialMissing, KeyStore, parse_configured_keys
from vault_svc.domain import envelope
from vault_svc.domain.access_log import Action, ChainVerifier, EntryDraft, Outcome, chain
from vault_svc.domain.errors import CiphertextInvalid
from vault_svc.settings import VaultSettings


def kek(version: int) -> envelope.KeyEncryptionKey:
    return envelope.KeyEncryptionKey(version, os.urandom(32))


def test_seal_open_and_the_token_binding() -> None:
    key = kek(1)
    sealed = envelope.seal(key, "tok_A", b"4242424242424242")
    assert b"4242424242424242" not in sealed.ciphertext + sealed.wrapped_key
    assert envelope.open_sealed(key, "tok_A", sealed.wrapped_key, sealed.ciphertext) == b"4242424242424242"
    # Moving the ciphertext (or wrapped key) to another token fails to decrypt.
    with pytest.raises(CiphertextInvalid):
        envelope.open_sealed(key, "tok_B", sealed.wrapped_key, sealed.ciphertext)
    other = envelope.seal(key, "tok_B", b"5555555555554444")
    with pytest.raises(CiphertextInvalid):
        envelope.open_sealed(key, "tok_A", sealed.wrapped_key, other.ciphertext)
    with pytest.raises(CiphertextInvalid):
        envelope.open_sealed(kek(1), "tok_A", sealed.wrapped_key, sealed.ciphertext)
    # Relabelling the version is caught too: the version is associated data of the wrap.
    relabelled = envelope.KeyEncryptionKey(2, b"\x00" * 32)
    with pytest.raises(CiphertextInvalid):
        envelope.open_sealed(relabelled, "tok_A", sealed.wrapped_key, sealed.ciphertext)


def test_rewrap_changes_the_wrapped_key_not_the_ciphertext() -> None:
    old, new = kek(1), kek(2)
    sealed = envelope.seal(old, "tok_A", b"378282246310005")
    wrapped = envelope.rewrap(old, new, "tok_A", sealed.wrapped_key)
    assert envelope.open_sealed(new, "tok_A", wrapped, sealed.ciphertext) == b"378282246310005"
    with pytest.raises(CiphertextInvalid):
        envelope.open_sealed(old, "tok_A", wrapped, sealed.ciphertext)


def test_fingerprint_is_keyed_and_stable() -> None:
    key = os.urandom(32)
    assert envelope.fingerprint(key, "4242424242424242") == envelope.fingerprint(key, "4242424242424242")
    assert envelope.fingerprint(key, "4242424242424242") != envelope.fingerprint(
        os.urandom(32), "4242424242424242"
    )


def test_key_file_store_generates_versions_0600_and_configured_store_is_read_only(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "vault" / "keys.json"
    store = KeyStore(configured=None, key_file=path)
    first = store.ensure(1)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second_process = KeyStore(configured=None, key_file=path)
    assert second_process.get(1).check_value == first.check_value
    store.ensure(2)
    assert second_process.get(2).check_value == store.get(2).check_value, "re-read on a miss"
    with pytest.raises(KeyMaterialMissing):
        store.get(7)

    material = base64.b64encode(os.urandom(32)).decode()
    configured = KeyStore(configured=parse_configured_keys(f"1:{material}"), key_file=None)
    assert configured.get(1).version == 1
    with pytest.raises(KeyMaterialMissing):
        configured.ensure(2)
    for bad in ("1", "x:abc", f"1:{material},1:{material}", "1:c2hvcnQ="):
        with pytest.raises(ValueError) as error:
            parse_configured_keys(bad)
        assert material not in str(error.value)


def test_production_refuses_missing_or_placeholder_keys(tmp_path: pathlib.Path) -> None:
    base = {
        "CLEARHOUSE_ENV": "production",
        "CLEARHOUSE_VAR_DIR": tmp_path,
        "database_url": "postgresql://db/vault",
    }
    with pytest.raises(ValueError, match="VAULT_KEYS"):
        VaultSettings(**base, fingerprint_key="f" * 40)
    material = base64.b64encode(os.urandom(32)).decode()
    with pytest.raises(ValueError, match="VAULT_FINGERPRINT_KEY"):
        VaultSettings(**base, keys=f"1:{material}", fingerprint_key="changeme")
    settings = VaultSettings(
        **base, keys=f"1:{material}", fingerprint_key=base64.b64encode(os.urandom(32)).decode()
    )
    assert settings.keys


def test_cvc_holds_expire_are_taken_once_and_are_bounded() -> None:
    now = [100.0]
    holds = CvcHolds(clock=lambda: now[0], capacity=2)
    holds.hold("tok_A", "123", 10)
    assert holds.is_held("tok_A") and "123" not in repr(holds)
    assert holds.take("tok_A") == "123" and holds.take("tok_A") is None
    holds.hold("tok_B", "456", 10)
    holds.hold("tok_C", "789", 5)
    with pytest.raises(CvcHoldsFull):
        holds.hold("tok_D", "000", 10)
    now[0] += 6
    assert not holds.is_held("tok_C")
    holds.hold("tok_D", "000", 10)
    now[0] += 10
    assert holds.take("tok_B") is None and holds.take("tok_D") is None


def test_chain_verifier_finds_the_first_edited_missing_or_truncated_entry() -> None:
    entries = []
    previous = ""
    for sequence in range(1, 6):
        draft = EntryDraft(
            actor_service="payments", action=Action.REVEAL, outcome=Outcome.ALLOWED, token=f"tok_{sequence}"
        )
        entry = chain(draft, sequence=sequence, created_at_us=sequence * 1000, previous_hash=previous)
        entries.append(entry)
        previous = entry.hash

    def verify(items: list[object], head: tuple[int, str] = (5, previous)) -> tuple[bool, int]:
        verifier = ChainVerifier()
        verifier.feed(items)  # type: ignore[arg-type]
        result = verifier.finish(*head)
        return result.ok, result.first_tampered_sequence

    assert verify(entries) == (True, 0)
    edited = [*entries]
    edited[2] = dataclasses.replace(entries[2], actor_service="tools")
    assert verify(edited) == (False, 3)
    assert verify(entries[:1] + entries[2:]) == (False, 2)
    assert verify(entries[:4]) == (False, 5)
