"""Wiring of the vault service: storage, keys, handlers and servicers."""

from __future__ import annotations

import pathlib

from clearhouse.vault.v1 import vault_pb2, vault_pb2_grpc

from chassis import db
from chassis.grpc_server import service_full_name
from chassis.service import ServiceDefinition
from vault_svc.adapters.keystore import KeyStore, load_fingerprint_key, parse_configured_keys
from vault_svc.entrypoints.grpc_servicer import VaultServicer
from vault_svc.service_layer.handlers import VaultService
from vault_svc.settings import VaultSettings

MIGRATIONS = pathlib.Path(__file__).resolve().parent / "migrations"


def build_keystore(settings: VaultSettings) -> KeyStore:
    """Key material from VAULT_KEYS, else the key file (generated on first use in development)."""
    if settings.keys:
        return KeyStore(configured=parse_configured_keys(settings.keys), key_file=None)
    return KeyStore(configured=None, key_file=settings.resolved_key_file)


async def build(settings: VaultSettings) -> ServiceDefinition:
    """Migrate the database (outside production), load keys, and assemble the servicers."""
    if settings.migrate_on_start:
        await db.migrate(MIGRATIONS, settings.resolved_database_url)
    engine = db.create_engine(settings.resolved_database_url)
    service = VaultService(
        engine=engine,
        keystore=build_keystore(settings),
        fingerprint_key=load_fingerprint_key(
            settings.fingerprint_key, settings.vault_dir / "fingerprint.key"
        ),
        allow_plaintext_callers=settings.plaintext,
    )
    try:
        await service.initialize()
    except BaseException:
        await engine.dispose()
        raise
    return ServiceDefinition(
        registrations=[(vault_pb2_grpc.add_VaultServicer_to_server, VaultServicer(service))],
        service_names=[service_full_name(vault_pb2, "Vault")],
        on_stop=[service.close, engine.dispose],
        extras={"engine": engine, "service": service},
    )
