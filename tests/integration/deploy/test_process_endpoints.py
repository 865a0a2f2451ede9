"""What the container manifests rely on, checked against the real processes.

Kubernetes probes each gRPC process on the plaintext health port (kubelet's native grpc probe
cannot present a client certificate), Prometheus scrapes the metrics port from another pod (so it
must listen on the interface it is told to), and pods mount only their own certificate, its key
and ca.pem (never the CA key).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from chassis import tls

ROOT = pathlib.Path(__file__).resolve().parents[3]
START_SECONDS_MAX = 60.0
# A loopback address other than 127.0.0.1: a metrics server that ignored CLEARHOUSE_METRICS_HOST
# and bound its default would not answer here.
METRICS_HOST = "127.0.0.2"
RPC_METRIC = "clearhouse_rpc_server_requests_total"

SERVICES = {
    "ledger_svc": ("ledger", "LEDGER", "clearhouse.ledger.v1.Ledger"),
    "vault_svc": ("vault", "VAULT", "clearhouse.vault.v1.Vault"),
    "provider_sim": ("provider", "PROVIDER", "clearhouse.provider.v1.Provider"),
    "payments_svc": ("payments", "PAYMENTS", "clearhouse.payments.v1.PaymentIntents"),
}


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the process binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def base_env(var_dir: pathlib.Path) -> dict[str, str]:
    """The test's environment without anything that would point a process at shared state."""
    prefixes = ("OTEL_", "LEDGER_", "VAULT_", "PAYMENTS_", "PROVIDER_", "GATEWAY_", "CLEARHOUSE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(CLEARHOUSE_VAR_DIR=str(var_dir), PYTHONPATH=f"{ROOT}:{ROOT / 'protos'}")
    return env


@contextlib.contextmanager
def running(module: str, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """Run `python -m module` and always stop it."""
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


def plaintext_health(port: int, service: str = "") -> int | None:
    """Health status over plaintext gRPC, or None when the call fails."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=2.0
            )
        except grpc.RpcError:
            return None
        return int(response.status)


def wait_serving(port: int, process: subprocess.Popen[bytes]) -> None:
    """Poll the plaintext health port until SERVING, failing early if the process died."""
    deadline = time.monotonic() + START_SECONDS_MAX
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read().decode() if process.stderr else ""
            pytest.fail(f"process exited with {process.returncode}: {stderr[-2000:]}")
        if plaintext_health(port) == health_pb2.HealthCheckResponse.SERVING:
            return
        time.sleep(0.1)
    pytest.fail(f"health port {port} not SERVING within {START_SECONDS_MAX} s")


def mtls_health_check(port: int, certs_dir: pathlib.Path) -> None:
    """One health call through the mTLS port, so the RPC metrics have a sample."""
    identity = tls.ensure_identity(certs_dir, "tools")
    with grpc.secure_channel(f"127.0.0.1:{port}", tls.channel_credentials(identity)) as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5.0)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.e2e
@pytest.mark.parametrize("module", sorted(SERVICES))
def test_health_port_and_metrics_endpoint(module: str, var_dir: pathlib.Path) -> None:
    """The probe port answers health only, in plaintext; /metrics answers on the configured host."""
    _name, prefix, service_full_name = SERVICES[module]
    grpc_port, health_port = free_port(), free_port()
    metrics_port = free_port(METRICS_HOST)
    env = base_env(var_dir)
    env.update(
        {
            f"{prefix}_GRPC_PORT": str(grpc_port),
            "CLEARHOUSE_HEALTH_PORT": str(health_port),
            "CLEARHOUSE_METRICS_PORT": str(metrics_port),
            "CLEARHOUSE_METRICS_HOST": METRICS_HOST,
        }
    )
    with running(module, env) as process:
        wait_serving(health_port, process)
        assert plaintext_health(health_port, service_full_name) == health_pb2.HealthCheckResponse.SERVING
        # The probe port carries nothing else: no business RPC, no reflection.
        with grpc.insecure_channel(f"127.0.0.1:{health_port}") as channel:
            reflection = channel.stream_stream(
                "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
            )
            with pytest.raises(grpc.RpcError) as refused:
                list(reflection(iter([b""]), timeout=2.0))
            assert refused.value.code() is grpc.StatusCode.UNIMPLEMENTED
        # The service port still refuses a caller without a client certificate.
        assert plaintext_health(grpc_port) is None

        mtls_health_check(grpc_port, var_dir / "certs")
        body = httpx.get(f"http://{METRICS_HOST}:{metrics_port}/metrics", timeout=5.0).text
    families = {family.name: family for family in text_string_to_metric_families(body)}
    # prometheus_client's parser names a counter family without its _total suffix.
    requests = families[RPC_METRIC.removesuffix("_total")]
    methods = {sample.labels.get("method", "") for sample in requests.samples}
    assert any(method.endswith("Check") for method in methods), methods
    assert "clearhouse_rpc_server_duration_seconds" in families


def test_identity_loads_from_a_read_only_mount_without_the_ca_key(tmp_path: pathlib.Path) -> None:
    """A pod gets ca.pem, <svc>.pem and <svc>.key from its Secret, read-only, and nothing else."""
    issued = tmp_path / "issued"
    tls.ensure_all(issued)
    mounted = tmp_path / "mounted"
    mounted.mkdir()
    for name in ("ca.pem", "payments.pem", "payments.key"):
        shutil.copy(issued / name, mounted / name)
    mounted.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        identity = tls.ensure_identity(mounted, "payments")
        assert identity.certificate_pem == (issued / "payments.pem").read_bytes()
        assert identity.ca_pem == (issued / "ca.pem").read_bytes()
        assert sorted(path.name for path in mounted.iterdir()) == ["ca.pem", "payments.key", "payments.pem"]
    finally:
        mounted.chmod(stat.S_IRWXU)
