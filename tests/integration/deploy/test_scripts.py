"""The operator scripts the compose stack and the Kubernetes Job run: migrate, issue_certs,
compose_secrets — run as the containers run them (`python deploy/<script>.py`)."""

from __future__ import annotations

import base64
import importlib
import os
import pathlib
import stat
import subprocess
import sys

import pytest
import sqlalchemy
import yaml
from alembic.script import ScriptDirectory

from chassis import db, tls
from chassis.settings import load

ROOT = pathlib.Path(__file__).resolve().parents[3]
SCRIPT_SECONDS_MAX = 120
PACKAGES = {
    "ledger": "ledger_svc",
    "vault": "vault_svc",
    "provider": "provider_sim",
    "payments": "payments_svc",
}


def run_script(
    name: str, *arguments: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run deploy/<name> the way the image does, with the repository on PYTHONPATH."""
    base = {k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL")}
    base.update(env or {}, PYTHONPATH=f"{ROOT}:{ROOT / 'protos'}")
    return subprocess.run(
        [sys.executable, str(ROOT / "deploy" / name), *arguments],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=SCRIPT_SECONDS_MAX,
        check=False,
    )


async def current_revision(url: str) -> str | None:
    """The Alembic revision recorded in the database."""
    engine = db.create_engine(url, instrument=False)
    try:
        async with engine.connect() as connection:
            result = await connection.execute(sqlalchemy.text("SELECT version_num FROM alembic_version"))
            return result.scalar()
    finally:
        await engine.dispose()


@pytest.mark.parametrize("service", sorted(PACKAGES))
async def test_migrate_brings_a_service_database_to_head(service: str, database_url: str) -> None:
    """The Job's command upgrades an empty database to the newest revision, and again is a no-op."""
    variable = f"{service.upper()}_DATABASE_URL"
    head = ScriptDirectory(str(ROOT / PACKAGES[service] / "migrations")).get_current_head()
    for _attempt in range(2):
        result = run_script("migrate.py", service, env={variable: database_url})
        assert result.returncode == 0, result.stderr
        assert f"migrate {service}: at head" in result.stdout
    assert await current_revision(database_url) == head


def test_migrate_refuses_a_missing_database_url() -> None:
    """A Job without its Secret fails loudly instead of migrating some default database."""
    result = run_script("migrate.py", "ledger")
    assert result.returncode == 2
    assert "LEDGER_DATABASE_URL is not set" in result.stderr


def test_issue_certs_writes_one_bundle_per_process(tmp_path: pathlib.Path) -> None:
    """Each bundle holds exactly what its pod mounts; the CA key stays in ca/; re-running keeps it."""
    out = tmp_path / "issue"
    assert run_script("issue_certs.py", str(out)).returncode == 0
    first = (out / "payments" / "payments.pem").read_bytes()
    assert run_script("issue_certs.py", str(out)).returncode == 0
    assert (out / "payments" / "payments.pem").read_bytes() == first
    for name in ("gateway", "payments", "vault", "ledger", "provider"):
        bundle = out / name
        assert sorted(p.name for p in bundle.iterdir()) == sorted(["ca.pem", f"{name}.pem", f"{name}.key"])
        assert stat.S_IMODE((bundle / f"{name}.key").stat().st_mode) == 0o600
        identity = tls.ensure_identity(bundle, name)
        assert identity.ca_pem == (out / "ca" / "ca.pem").read_bytes()
    assert (out / "ca" / "ca.key").exists()


def test_compose_secrets_are_random_consistent_and_written_once(tmp_path: pathlib.Path) -> None:
    """Shared values agree across files, secrets are long enough for production, no rewrite."""
    assert run_script("compose_secrets.py", str(tmp_path)).returncode == 0
    files = {
        path.stem: dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
        for path in tmp_path.glob("*.env")
    }
    assert set(files) == {"postgres", "ledger", "vault", "provider", "payments", "gateway"}
    password = files["postgres"]["POSTGRES_PASSWORD"]
    for service in ("ledger", "vault", "provider", "payments"):
        assert files[service][f"{service.upper()}_DATABASE_URL"] == (
            f"postgresql://clearhouse:{password}@postgres:5432/{service}"
        )
    for key in ("PROVIDER_A_WEBHOOK_SECRET", "PROVIDER_B_WEBHOOK_SECRET"):
        assert files["provider"][key] == files["payments"][key]
    assert files["provider"]["PROVIDER_A_WEBHOOK_SECRET"] != files["provider"]["PROVIDER_B_WEBHOOK_SECRET"]
    assert len(files["payments"]["CLEARHOUSE_ADMIN_KEY"]) >= 32
    version, key = files["vault"]["VAULT_KEYS"].split(":", 1)
    assert version == "1" and len(base64.b64decode(key)) == 32
    assert stat.S_IMODE((tmp_path / "payments.env").stat().st_mode) == 0o600
    before = (tmp_path / "payments.env").read_text()
    (tmp_path / "vault.env").unlink()
    assert run_script("compose_secrets.py", str(tmp_path)).returncode == 0
    assert (tmp_path / "payments.env").read_text() == before
    assert not (tmp_path / "vault.env").exists()  # all or nothing: no half-regenerated set


SETTINGS_CLASSES = {
    "ledger": "ledger_svc.settings:LedgerSettings",
    "vault": "vault_svc.settings:VaultSettings",
    "provider": "provider_sim.settings:ProviderSettings",
    "payments": "payments_svc.settings:PaymentsSettings",
    "gateway": "gateway.settings:GatewaySettings",
}


@pytest.mark.parametrize("service", sorted(SETTINGS_CLASSES))
def test_compose_secrets_satisfy_production_settings(
    service: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each process's settings, in production mode, accept its generated env file as is."""
    assert run_script("compose_secrets.py", str(tmp_path)).returncode == 0
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    for key in list(os.environ):
        if key.startswith(
            ("CLEARHOUSE_", "LEDGER_", "VAULT_", "PROVIDER_", "PAYMENTS_", "GATEWAY_", "REDIS_")
        ):
            monkeypatch.delenv(key)
    variables = {str(k): str(v) for k, v in compose["services"][service]["environment"].items()}
    for line in (tmp_path / f"{service}.env").read_text().splitlines():
        key, value = line.split("=", 1)
        variables[key] = value
    for key, value in variables.items():
        monkeypatch.setenv(key, value)
    module_name, class_name = SETTINGS_CLASSES[service].split(":")
    settings = load(getattr(importlib.import_module(module_name), class_name))
    assert settings.is_production
