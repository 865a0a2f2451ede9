"""Key-encryption key material, kept outside the vault database.

Sources: `VAULT_KEYS` ("1:<base64 32 bytes>,2:<…>", read-only: rotation activates the next
provisioned version) or a JSON key file (development default `var/vault/keys.json`, 0600, written
atomically: rotation generates the next version into it). The fingerprint key is separate and
never rotates, so fingerprints stay stable.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import pathlib
import threading
from collections.abc import Iterator

from chassis import secrets
from vault_svc.domain.envelope import KEY_BYTES, KeyEncryptionKey

# More versions than this in one key source is a misconfiguration, not a rotation history.
KEY_VERSIONS_MAX = 10_000


class KeyMaterialMissing(Exception):
    """No key material for a version (not provisioned in VAULT_KEYS, or the key file lost it)."""


def parse_configured_keys(value: str) -> dict[int, bytes]:
    """Parse VAULT_KEYS; ValueError naming the bad entry (never echoing the key)."""
    keys: dict[int, bytes] = {}
    for index, item in enumerate(part.strip() for part in value.split(",") if part.strip()):
        version_text, separator, material_text = item.partition(":")
        if not separator or not version_text.strip().isdigit():
            raise ValueError(f"VAULT_KEYS entry {index + 1} must look like <version>:<base64 key>")
        version = int(version_text)
        try:
            material = base64.b64decode(material_text.strip() + "==", altchars=b"-_", validate=False)
        except (binascii.Error, ValueError):
            raise ValueError(f"VAULT_KEYS version {version} is not base64") from None
        if len(material) != KEY_BYTES:
            raise ValueError(f"VAULT_KEYS version {version} must decode to {KEY_BYTES} bytes")
        if not 1 <= version <= KEY_VERSIONS_MAX or version in keys:
            raise ValueError(f"VAULT_KEYS version {version} is out of range or repeated")
        keys[version] = material
    return keys


def _encode(material: bytes) -> str:
    return base64.urlsafe_b64encode(material).decode().rstrip("=")


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class KeyStore:
    """KEKs by version, each built once and cached in memory."""

    def __init__(self, *, configured: dict[int, bytes] | None, key_file: pathlib.Path | None) -> None:
        if configured is None and key_file is None:
            raise ValueError("a key store needs VAULT_KEYS or a key file")
        self._configured = configured
        self._key_file = key_file
        self._lock = threading.Lock()
        self._keys: dict[int, KeyEncryptionKey] = {}
        self._load()

    @property
    def writable(self) -> bool:
        """True when rotation may generate new material (a key file, not VAULT_KEYS)."""
        return self._configured is None

    def _load(self) -> None:
        materials = dict(self._configured) if self._configured is not None else self._read_file()
        for version, material in materials.items():
            if version not in self._keys:
                self._keys[version] = KeyEncryptionKey(version, material)

    def _read_file(self) -> dict[int, bytes]:
        assert self._key_file is not None
        if not self._key_file.exists():
            return {}
        document = json.loads(self._key_file.read_text())
        return {int(version): _decode(text) for version, text in document.get("versions", {}).items()}

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        # Another process on the same var/ (a second replica in development) may rotate too.
        assert self._key_file is not None
        self._key_file.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self._key_file.with_suffix(".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _write_file(self, materials: dict[int, bytes]) -> None:
        assert self._key_file is not None
        document = {"versions": {str(v): _encode(m) for v, m in sorted(materials.items())}}
        temporary = self._key_file.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(self._key_file)

    def get(self, version: int) -> KeyEncryptionKey:
        """The KEK of `version` (re-reading the source once if another process added it)."""
        key = self._keys.get(version)
        if key is None:
            with self._lock:
                self._load()
            key = self._keys.get(version)
        if key is None:
            raise KeyMaterialMissing(f"no key material for key version {version}")
        return key

    def ensure(self, version: int) -> KeyEncryptionKey:
        """The KEK of `version`, generating it into the key file when absent and writable."""
        with contextlib.suppress(KeyMaterialMissing):
            return self.get(version)
        if not self.writable:
            raise KeyMaterialMissing(f"key version {version} is not provisioned in VAULT_KEYS")
        if not 1 <= version <= KEY_VERSIONS_MAX:
            raise KeyMaterialMissing(f"key version {version} is out of range")
        with self._lock, self._file_lock():
            materials = self._read_file()
            if version not in materials:
                materials[version] = os.urandom(KEY_BYTES)
                self._write_file(materials)
            self._load()
        return self._keys[version]


def load_fingerprint_key(configured: str | None, path: pathlib.Path) -> bytes:
    """The fingerprint HMAC key: VAULT_FINGERPRINT_KEY, else generated once at `path` (0600)."""
    if configured:
        return configured.encode()
    return secrets.load_or_create(path, nbytes=32).encode()
