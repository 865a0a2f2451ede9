"""Each of the five processes starts as `python -m …`, answers health, and lists its services
through reflection (with the grpcio-reflection client, as grpcurl or any external tool would)."""

from __future__ import annotations

import contextlib
import os
import pathlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from chassis import tls

ROOT = pathlib.Path(__file__).resolve().parents[2]
START_SECONDS_MAX = 60.0

SERVICES = {
    "ledger_svc": ("ledger", "LEDGER", ["clearhouse.ledger.v1.Ledger"]),
    "vault_svc": ("vault", "VAULT", ["clearhouse.vault.v1.Vault"]),
    "provider_sim": ("provider", "PROVIDER", ["clearhouse.provider.v1.Provider"]),
    "payments_svc": (
        "payments",
        "PAYMENTS",
        [
            "clearhouse.payments.v1.PaymentIntents",
            "clearhouse.payments.v1.Merchants",
            "clearhouse.payments.v1.Refunds",
            "clearhouse.payments.v1.Admin",
        ],
    ),
}


@contextlib.contextmanager
def running(module: str, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, "-m", module], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_port_file(path: pathlib.Path, process: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + START_SECONDS_MAX
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read().decode() if process.stderr else ""
            pytest.fail(f"process exited with {process.returncode}: {stderr[-2000:]}")
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.05)
    pytest.fail(f"{path.name} not written within {START_SECONDS_MAX} s")


def base_env(var_dir: pathlib.Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LEDGER_", "VAULT_", "PAYMENTS_"))
    }
    env.update(CLEARHOUSE_VAR_DIR=str(var_dir), PYTHONPATH=f"{ROOT}:{ROOT / 'protos'}")
    return env


@pytest.mark.e2e
@pytest.mark.parametrize("module", sorted(SERVICES))
def test_service_starts_on_port_zero_serves_health_and_reflection(module: str, var_dir: pathlib.Path) -> None:
    name, prefix, expected_services = SERVICES[module]
    env = base_env(var_dir)
    env[f"{prefix}_GRPC_PORT"] = "0"
    with running(module, env) as process:
        port = wait_for_port_file(var_dir / "run" / f"{name}.port", process)
        assert port > 0
        identity = tls.ensure_identity(var_dir / "certs", "tools")
        channel = grpc.secure_channel(
            f"127.0.0.1:{port}",
            grpc.ssl_channel_credentials(identity.ca_pem, identity.private_key_pem, identity.certificate_pem),
        )
        try:
            health = health_pb2_grpc.HealthStub(channel)
            for service in ["", *expected_services]:
                reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
            listed = set(ProtoReflectionDescriptorDatabase(channel).get_services())
            assert set(expected_services) <= listed
            assert "grpc.health.v1.Health" in listed
        finally:
            channel.close()
        assert (var_dir / f"{name}.db").exists(), "the service migrated its embedded database"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.e2e
def test_gateway_starts_and_answers_healthz(var_dir: pathlib.Path) -> None:
    env = base_env(var_dir)
    port = free_port()
    env["GATEWAY_PORT"] = str(port)
    with running("gateway", env) as process:
        deadline = time.monotonic() + START_SECONDS_MAX
        while True:
            if process.poll() is not None:
                pytest.fail(f"gateway exited with {process.returncode}")
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
