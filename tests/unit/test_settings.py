import pytest

from chassis.settings import (
    CommonSettings,
    Environment,
    SettingsError,
    check_secret,
    load,
)
from ledger_svc.settings import LedgerSettings


def test_defaults_are_the_embedded_development_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEDGER_DATABASE_URL", raising=False)
    settings = load(LedgerSettings)
    assert settings.environment is Environment.DEVELOPMENT
    assert settings.grpc_port == 50053
    assert settings.resolved_database_url.endswith("var/ledger.db")
    assert settings.migrate_on_start is True


def test_service_prefix_and_shared_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_GRPC_PORT", "6000")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/2")
    monkeypatch.setenv("CLEARHOUSE_LOG_LEVEL", "debug")
    settings = load(LedgerSettings)
    assert settings.grpc_port == 6000
    assert settings.redis_url == "redis://127.0.0.1:6379/2"
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("LEDGER_GRPC_PORT", "70000", "grpc_port"),
        ("LEDGER_GRPC_PORT", "eighty", "grpc_port"),
        ("CLEARHOUSE_ENV", "staging", "CLEARHOUSE_ENV"),
        ("CLEARHOUSE_LOG_LEVEL", "LOUD", "CLEARHOUSE_LOG_LEVEL"),
        ("REDIS_URL", "http://cache", "REDIS_URL"),
    ],
)
def test_invalid_values_are_rejected_with_the_variable_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=fragment):
        load(LedgerSettings)


def test_production_refuses_plaintext_and_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLEARHOUSE_ENV", "production")
    monkeypatch.setenv("CLEARHOUSE_PLAINTEXT", "true")
    with pytest.raises(SettingsError, match="mTLS"):
        load(CommonSettings)
    monkeypatch.delenv("CLEARHOUSE_PLAINTEXT")
    with pytest.raises(SettingsError, match="LEDGER_DATABASE_URL must name a PostgreSQL"):
        load(LedgerSettings)
    monkeypatch.setenv("LEDGER_DATABASE_URL", "postgresql://ledger@db/ledger")
    settings = load(LedgerSettings)
    assert settings.migrate_on_start is False


@pytest.mark.parametrize(
    "value", [None, "", "changeme", "CHANGEME", "secret", "placeholder", "short-but-real"]
)
def test_production_refuses_missing_placeholder_and_short_secrets(value: str | None) -> None:
    with pytest.raises(SettingsError, match="CLEARHOUSE_ADMIN_KEY"):
        check_secret("CLEARHOUSE_ADMIN_KEY", value, Environment.PRODUCTION)


def test_secrets_are_accepted_when_real_or_outside_production() -> None:
    check_secret("CLEARHOUSE_ADMIN_KEY", "k" * 40, Environment.PRODUCTION)
    check_secret("CLEARHOUSE_ADMIN_KEY", "changeme", Environment.DEVELOPMENT)
