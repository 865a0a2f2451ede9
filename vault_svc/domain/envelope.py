"""Envelope encryption: AES-256-GCM per record under a fresh data key wrapped by a versioned KEK.

Layout of both blobs: 12-byte nonce ‖ ciphertext ‖ 16-byte tag. The token id is associated data
of the card ciphertext, and token id plus key version are associated data of the wrapped key, so a
ciphertext or wrapped key copied onto another token (or relabelled with another version) fails to
decrypt instead of revealing the wrong card. Pure computation: no storage, no key loading.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault_svc.domain.errors import CiphertextInvalid

KEY_BYTES = 32
NONCE_BYTES = 12
_KEY_CHECK_LABEL = b"clearhouse-vault key check v1"
# Length of the key check value kept beside each version (not enough to brute-force a key).
KEY_CHECK_HEX_LENGTH = 16


@dataclasses.dataclass(frozen=True, slots=True)
class SealedRecord:
    """What is stored: the wrapped data key, the ciphertext, and the KEK version used."""

    key_version: int
    wrapped_key: bytes
    ciphertext: bytes


class KeyEncryptionKey:
    """One KEK version, with its AES-GCM instance built once (cached for the process)."""

    __slots__ = ("_aead", "check_value", "version")

    def __init__(self, version: int, material: bytes) -> None:
        if len(material) != KEY_BYTES:
            raise ValueError(f"key-encryption key version {version} must be {KEY_BYTES} bytes")
        self.version = version
        self._aead = AESGCM(material)
        self.check_value = key_check_value(material)

    def wrap(self, data_key: bytes, token: str) -> bytes:
        """Encrypt a data key, bound to its token and this version."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data_key, _wrap_aad(token, self.version))

    def unwrap(self, wrapped_key: bytes, token: str) -> bytes:
        """Decrypt a data key; CiphertextInvalid when it was altered or moved."""
        try:
            return self._aead.decrypt(
                wrapped_key[:NONCE_BYTES], wrapped_key[NONCE_BYTES:], _wrap_aad(token, self.version)
            )
        except InvalidTag:
            raise CiphertextInvalid("the wrapped data key does not authenticate") from None

    def __repr__(self) -> str:
        return f"KeyEncryptionKey(version={self.version})"


def _wrap_aad(token: str, version: int) -> bytes:
    return f"{token}|v{version}".encode()


def key_check_value(material: bytes) -> str:
    """A short, non-secret fingerprint of key material, to detect a wrong key for a version."""
    return hmac.new(material, _KEY_CHECK_LABEL, hashlib.sha256).hexdigest()[:KEY_CHECK_HEX_LENGTH]


def seal(kek: KeyEncryptionKey, token: str, plaintext: bytes) -> SealedRecord:
    """Encrypt `plaintext` for `token` under a fresh data key wrapped by `kek`."""
    data_key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = nonce + AESGCM(data_key).encrypt(nonce, plaintext, token.encode())
    return SealedRecord(kek.version, kek.wrap(data_key, token), ciphertext)


def open_sealed(kek: KeyEncryptionKey, token: str, wrapped_key: bytes, ciphertext: bytes) -> bytes:
    """Decrypt a record of `token`; CiphertextInvalid when anything was altered or moved."""
    data_key = kek.unwrap(wrapped_key, token)
    try:
        return AESGCM(data_key).decrypt(ciphertext[:NONCE_BYTES], ciphertext[NONCE_BYTES:], token.encode())
    except InvalidTag:
        raise CiphertextInvalid("the card ciphertext does not authenticate") from None


def rewrap(old: KeyEncryptionKey, new: KeyEncryptionKey, token: str, wrapped_key: bytes) -> bytes:
    """Re-wrap a record's data key from `old` to `new`; the card ciphertext is untouched."""
    return new.wrap(old.unwrap(wrapped_key, token), token)


def fingerprint(fingerprint_key: bytes, pan_digits: str) -> str:
    """Keyed HMAC-SHA256 of the PAN, hex (a plain hash of a PAN is brute-forceable)."""
    return hmac.new(fingerprint_key, pan_digits.encode(), hashlib.sha256).hexdigest()
