"""Settings of the vault service (environment prefix VAULT_)."""

from __future__ import annotations

import pathlib
from typing import ClassVar

from pydantic import model_validator
from pydantic_settings import SettingsConfigDict

from chassis.settings import ServiceSettings, check_secret
from vault_svc.adapters.keystore import parse_configured_keys


class VaultSettings(ServiceSettings):
    """The card vault: gRPC port 50052 by default.

    Key-encryption keys never come from the vault database: `VAULT_KEYS` ("1:<base64 32 bytes>,
    2:<…>") or a key file (`VAULT_KEY_FILE`, default `var/vault/keys.json`, generated in
    development). The fingerprint key (`VAULT_FINGERPRINT_KEY`, default generated into
    `var/vault/fingerprint.key`) is separate and never rotates. Production refuses generated,
    missing or placeholder keys.
    """

    model_config = SettingsConfigDict(env_prefix="VAULT_", extra="ignore", validate_default=True)
    service_name: ClassVar[str] = "vault"
    default_grpc_port: ClassVar[int] = 50052

    # Key-encryption keys by version; read-only (rotation activates the next provisioned version).
    keys: str | None = None
    # JSON key file (writable: rotation generates the next version into it).
    key_file: pathlib.Path | None = None
    # HMAC key of card fingerprints.
    fingerprint_key: str | None = None

    @model_validator(mode="after")
    def _vault_keys(self) -> VaultSettings:
        if self.keys:
            parsed = parse_configured_keys(self.keys)
            if not parsed:
                raise ValueError("VAULT_KEYS names no key")
            for version in parsed:
                check_secret(f"VAULT_KEYS version {version}", _entry(self.keys, version), self.environment)
        if self.is_production:
            if not self.keys and (self.key_file is None or not self.key_file.exists()):
                raise ValueError("VAULT_KEYS (or an existing VAULT_KEY_FILE) must be set in production")
            check_secret("VAULT_FINGERPRINT_KEY", self.fingerprint_key, self.environment)
        return self

    @property
    def vault_dir(self) -> pathlib.Path:
        """Development key material: var/vault/ (never beside the database in production)."""
        return self.var_dir / "vault"

    @property
    def resolved_key_file(self) -> pathlib.Path:
        """The key file in force when VAULT_KEYS is not set."""
        return self.key_file or self.vault_dir / "keys.json"


def _entry(keys: str, version: int) -> str:
    for item in keys.split(","):
        number, _, material = item.strip().partition(":")
        if number.strip().isdigit() and int(number) == version:
            return material.strip()
    return ""
