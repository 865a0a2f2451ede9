"""deploy/docker-compose.yml, checked statically (no Docker engine needed).

The file parses (anchors and merge keys resolved as Compose does), references only services,
volumes, networks and files that exist, health-checks every long-running process, keeps secrets
out of the file, and wires each process to the addresses and ports the runbook documents.
"""

from __future__ import annotations

import pathlib
import re
from typing import Any

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
COMPOSE = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
PROCESSES = {"gateway", "payments", "vault", "ledger", "provider"}
ONE_SHOT = {"certs", "migrate"}
DEPENDENCY_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
SECRET_NAME = re.compile(r"(KEY|SECRET|PASSWORD|DATABASE_URL|VAULT_KEYS)$")


def environment(service: str) -> dict[str, str]:
    """A service's inline environment (mapping form)."""
    env = SERVICES[service].get("environment", {})
    assert isinstance(env, dict), f"{service}: use the mapping form for environment"
    return {key: str(value) for key, value in env.items()}


def test_services_are_the_documented_stack() -> None:
    """PostgreSQL, Redis, collector, Jaeger, Prometheus, the one-shot jobs and the five processes."""
    assert (
        set(SERVICES)
        == {"postgres", "redis", "otel-collector", "jaeger", "prometheus"} | ONE_SHOT | PROCESSES
    )


def test_references_resolve() -> None:
    """depends_on, volumes, networks, env files and bind mounts name things that exist."""
    volumes, networks = set(COMPOSE["volumes"]), set(COMPOSE["networks"])
    for name, service in SERVICES.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
            assert condition["condition"] in DEPENDENCY_CONDITIONS
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[dependency], f"{name} waits for {dependency}'s health"
        for network in service.get("networks", []):
            assert network in networks
        for mount in service.get("volumes", []):
            source = mount["source"] if isinstance(mount, dict) else mount.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in volumes, f"{name} mounts undeclared volume {source}"
        if "build" in service:
            assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        for env_file in service.get("env_file", []):
            # Written by compose_secrets.py, never committed; the folder and its .gitignore are.
            assert env_file.startswith("secrets/") and (DEPLOY / "secrets" / ".gitignore").is_file()


def test_no_cycle_in_start_order() -> None:
    """Compose refuses a dependency cycle; so does this test, before anyone runs it."""
    visiting: set[str] = set()
    done: set[str] = set()

    def visit(name: str) -> None:
        assert name not in visiting, f"dependency cycle through {name}"
        if name in done:
            return
        visiting.add(name)
        for dependency in SERVICES[name].get("depends_on", {}):
            visit(dependency)
        visiting.discard(name)
        done.add(name)

    for name in SERVICES:
        visit(name)


@pytest.mark.parametrize("name", sorted(PROCESSES | {"postgres", "redis", "prometheus"}))
def test_long_running_services_have_health_checks(name: str) -> None:
    """Every process and data store reports health; gRPC processes through the plaintext health port."""
    check = SERVICES[name]["healthcheck"]
    assert check["test"][0] == "CMD"
    if name in PROCESSES - {"gateway"}:
        assert check["test"][-2:] == ["grpc", f"127.0.0.1:{environment(name)['CLEARHOUSE_HEALTH_PORT']}"]


@pytest.mark.parametrize("name", sorted(PROCESSES))
def test_processes_run_in_production_mode_hardened(name: str) -> None:
    """Production settings, non-root, read-only root, no capabilities, own certificates only."""
    service, env = SERVICES[name], environment(name)
    assert env["CLEARHOUSE_ENV"] == "production"
    assert env["CLEARHOUSE_METRICS_HOST"] == "0.0.0.0"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://otel-collector:")
    assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
    assert service["user"] == "10001:10001"
    assert service["env_file"] == [f"secrets/{name}.env"]
    certs = [m for m in service["volumes"] if isinstance(m, dict) and m["source"] == "certs"]
    assert [m["volume"]["subpath"] for m in certs] == [name]
    assert all(m["read_only"] for m in certs)
    for key, value in env.items():
        assert not SECRET_NAME.search(key), f"{name}: {key}={value} belongs in secrets/{name}.env"


def test_processes_reach_each_other_by_service_name() -> None:
    """Addresses point at compose service names (the certificates carry those names as SANs)."""
    payments, gateway, provider = environment("payments"), environment("gateway"), environment("provider")
    assert payments["PAYMENTS_VAULT_ADDRESS"] == "vault:50052"
    assert payments["PAYMENTS_LEDGER_ADDRESS"] == "ledger:50053"
    assert payments["PAYMENTS_PROVIDER_ADDRESS"] == "provider:50054"
    assert gateway["GATEWAY_PAYMENTS_ADDRESS"] == "payments:50051"
    assert provider["PROVIDER_WEBHOOK_URL"].startswith("http://gateway:8080/v1/provider_webhooks/")
    for name in PROCESSES - {"gateway"}:
        assert environment(name)[f"{name.upper()}_GRPC_HOST"] == "0.0.0.0"


def test_prometheus_scrapes_every_process() -> None:
    """Every process appears as a target of deploy/prometheus.yml, on its metrics port."""
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    for name in PROCESSES - {"gateway"}:
        assert f"{name}:{environment(name)['CLEARHOUSE_METRICS_PORT']}" in targets
    assert "gateway:8080" in targets


def test_databases_exist_for_each_service() -> None:
    """The init script creates one database per service; migrate runs all four."""
    script = (DEPLOY / "postgres" / "init-databases.sql").read_text()
    for name in ("ledger", "vault", "provider", "payments"):
        assert f"CREATE DATABASE {name};" in script
    assert SERVICES["migrate"]["command"][-4:] == ["ledger", "vault", "provider", "payments"]


def test_collector_forwards_traces_to_jaeger() -> None:
    """The collector receives OTLP on the port the processes export to and exports to Jaeger."""
    collector = yaml.safe_load((DEPLOY / "otel-collector.yaml").read_text())
    pipeline = collector["service"]["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"]
    assert "otlp/jaeger" in pipeline["exporters"]
    assert collector["exporters"]["otlp/jaeger"]["endpoint"].split(":")[0] in SERVICES
    assert pipeline["processors"][0] == "memory_limiter"  # first, or it cannot protect the rest
    for name in pipeline["processors"]:
        assert name in collector["processors"]
    grpc_endpoint = collector["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert grpc_endpoint.endswith(
        ":" + environment("ledger")["OTEL_EXPORTER_OTLP_ENDPOINT"].rsplit(":", 1)[1]
    )
