"""deploy/k8s: schema-valid manifests, and the properties the runbook promises of them.

kubernetes-validate checks each object against the bundled (offline) OpenAPI schemas in strict
mode; the tests below check what a schema cannot: probes on the right ports, the security
context, Secrets referenced and never inlined, selectors that match, and NetworkPolicies that
allow exactly the documented edges.
"""

from __future__ import annotations

import itertools
import pathlib
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]
K8S_DIR = ROOT / "deploy" / "k8s"
# The oldest Kubernetes the manifests support: `preStop.sleep` needs 1.30, grpc probes 1.24.
KUBERNETES_VERSION = "1.30.0"
NAMESPACE = "clearhouse"
GRPC_PROCESSES = {"payments": 50051, "vault": 50052, "ledger": 50053, "provider": 50054}
PROCESSES = {"gateway": 8080, **GRPC_PROCESSES}
HEALTH_PORT = 8081
METRICS_PORT = 9464
# Every caller → callee:port edge between Clearhouse pods the design allows, and nothing else.
DOCUMENTED_EDGES = {
    ("gateway", "payments", 50051),
    ("payments", "vault", 50052),
    ("payments", "ledger", 50053),
    ("payments", "provider", 50054),
    ("provider", "gateway", 8080),
}
SECRET_LIKE_SUFFIXES = ("_KEY", "_SECRET", "_PASSWORD", "_DATABASE_URL", "VAULT_KEYS", "REDIS_URL", "_TOKEN")


def manifest_files() -> list[pathlib.Path]:
    """Every manifest except the kustomization (not a Kubernetes object)."""
    return sorted(path for path in K8S_DIR.glob("*.yaml") if path.name != "kustomization.yaml")


def load_objects() -> list[dict[str, Any]]:
    """All objects of all manifests."""
    objects: list[dict[str, Any]] = []
    for path in manifest_files():
        objects.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return objects


OBJECTS = load_objects()


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    """Objects of one kind by name."""
    return {obj["metadata"]["name"]: obj for obj in OBJECTS if obj["kind"] == kind}


@pytest.mark.parametrize("path", manifest_files(), ids=lambda path: path.name)
def test_manifest_validates_against_the_kubernetes_schema(path: pathlib.Path) -> None:
    """Strict validation (unknown fields are errors) with the schemas bundled in the package."""
    for document in yaml.safe_load_all(path.read_text()):
        if document:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_a_broken_manifest_is_rejected() -> None:
    """The validator is really on: a misspelt field fails."""
    deployment = yaml.safe_load((K8S_DIR / "ledger.yaml").read_text().split("\n---\n")[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    """`kubectl apply -k` applies all of them; a new file cannot be forgotten."""
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(path.name for path in manifest_files())


def test_everything_lives_in_the_namespace_and_nothing_inlines_a_secret() -> None:
    """Secrets are created out of band (docs/operations.md); manifests only reference them."""
    assert "Secret" not in {obj["kind"] for obj in OBJECTS}
    for obj in OBJECTS:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]["name"]
    config = of_kind("ConfigMap")["clearhouse-config"]["data"]
    for key in config:
        assert not key.endswith(SECRET_LIKE_SUFFIXES), f"{key} belongs in a Secret"
    for pod_spec in pod_specs().values():
        for container in pod_spec["containers"]:
            for variable in container.get("env", []):
                if variable["name"].endswith(SECRET_LIKE_SUFFIXES):
                    assert "secretKeyRef" in variable.get("valueFrom", {}), variable["name"]


def pod_specs() -> dict[str, dict[str, Any]]:
    """Pod templates of Deployments and Jobs by object name."""
    specs = {}
    for obj in OBJECTS:
        if obj["kind"] in {"Deployment", "Job"}:
            specs[obj["metadata"]["name"]] = obj["spec"]["template"]["spec"]
    return specs


def test_every_process_has_a_deployment_and_a_service() -> None:
    """Five Deployments, five Services whose selectors match the pods and name ports that exist."""
    deployments, services = of_kind("Deployment"), of_kind("Service")
    assert set(deployments) == set(PROCESSES)
    assert set(services) == set(PROCESSES)
    for name, port in PROCESSES.items():
        template = deployments[name]["spec"]["template"]
        selector = deployments[name]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= template["metadata"]["labels"].items()
        assert services[name]["spec"]["selector"].items() <= template["metadata"]["labels"].items()
        container_ports = {p["name"]: p["containerPort"] for p in template["spec"]["containers"][0]["ports"]}
        for service_port in services[name]["spec"]["ports"]:
            assert service_port["targetPort"] in container_ports
        assert port in container_ports.values()
        assert port in {p["port"] for p in services[name]["spec"]["ports"]}


def test_grpc_processes_use_native_grpc_probes_on_the_health_port() -> None:
    """Startup, readiness and liveness are kubelet grpc probes on CLEARHOUSE_HEALTH_PORT."""
    config = of_kind("ConfigMap")["clearhouse-config"]["data"]
    assert int(config["CLEARHOUSE_HEALTH_PORT"]) == HEALTH_PORT
    assert int(config["CLEARHOUSE_METRICS_PORT"]) == METRICS_PORT
    assert config["CLEARHOUSE_METRICS_HOST"] == "0.0.0.0"
    deployments = of_kind("Deployment")
    for name, grpc_port in GRPC_PROCESSES.items():
        template = deployments[name]["spec"]["template"]
        container = template["spec"]["containers"][0]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"]["port"] == HEALTH_PORT, (name, probe)
        assert template["metadata"]["annotations"]["prometheus.io/port"] == str(METRICS_PORT)
        env = {v["name"]: v.get("value") for v in container["env"]}
        assert env[f"{name.upper()}_GRPC_HOST"] == "0.0.0.0"
        assert env[f"{name.upper()}_GRPC_PORT"] == str(grpc_port)
    gateway = deployments["gateway"]["spec"]["template"]["spec"]["containers"][0]
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"


@pytest.mark.parametrize("name", sorted(pod_specs()))
def test_pods_run_non_root_read_only_with_resources(name: str) -> None:
    """Restricted Pod Security: non-root, no escalation, no capabilities, read-only root, limits."""
    spec = pod_specs()[name]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec["automountServiceAccountToken"] is False
    for container in spec["containers"]:
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
        assert "memory" in container["resources"]["limits"]
        assert ":" in container["image"] and not container["image"].endswith(":latest")


def test_each_pod_mounts_only_its_own_certificate_and_secret() -> None:
    """A pod's Secrets are its own: a vault pod cannot read the payments key, nor any CA key."""
    for name in PROCESSES:
        spec = pod_specs()[name]
        secrets = {v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
        assert secrets == {f"clearhouse-certs-{name}"}
        env_from = spec["containers"][0]["envFrom"]
        assert {e["secretRef"]["name"] for e in env_from if "secretRef" in e} == {f"clearhouse-{name}"}
    job = pod_specs()["clearhouse-migrate"]
    for container in job["containers"]:
        references = {v["valueFrom"]["secretKeyRef"]["name"] for v in container["env"]}
        assert references == {f"clearhouse-{container['name']}"}


def test_autoscalers_and_disruption_budgets_target_real_deployments() -> None:
    """HPA and PDB for every horizontally scaled process (the provider simulator is a singleton)."""
    deployments, autoscalers, budgets = (
        of_kind("Deployment"),
        of_kind("HorizontalPodAutoscaler"),
        of_kind("PodDisruptionBudget"),
    )
    scaled = set(PROCESSES) - {"provider"}
    assert set(autoscalers) == scaled
    assert set(budgets) == scaled
    for name in scaled:
        assert autoscalers[name]["spec"]["scaleTargetRef"]["name"] == name
        assert autoscalers[name]["spec"]["minReplicas"] >= 2  # a PDB of maxUnavailable 1 needs two
        assert "replicas" not in deployments[name]["spec"]  # the HPA owns the count
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert budgets[name]["spec"]["selector"]["matchLabels"].items() <= labels.items()


def _pod_labels() -> dict[str, dict[str, str]]:
    return {name: spec["template"]["metadata"]["labels"] for name, spec in _workloads().items()}


def _workloads() -> dict[str, dict[str, Any]]:
    return {name: obj["spec"] for name, obj in of_kind("Deployment").items()}


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, "only matchLabels selectors are modelled"
    match_labels: dict[str, str] = selector.get("matchLabels", {})
    return match_labels.items() <= labels.items()


def _peer_allows(peers: list[dict[str, Any]], labels: dict[str, str]) -> bool:
    """Does a from/to list admit a pod of this namespace with these labels?"""
    for peer in peers:
        if "namespaceSelector" in peer or "ipBlock" in peer:
            continue  # other namespaces or addresses outside the cluster: not a pod of ours
        if _selects(peer["podSelector"], labels):
            return True
    return False


def _port_allowed(rule: dict[str, Any], port: int) -> bool:
    return "ports" not in rule or any(
        p["port"] == port and p.get("protocol", "TCP") == "TCP" for p in rule["ports"]
    )


def _allowed(direction: str, subject: dict[str, str], peer: dict[str, str], port: int) -> bool:
    """Whether the policies selecting `subject` allow traffic to/from `peer` on `port`."""
    policy_type, key, peers_key = (
        ("Egress", "egress", "to") if direction == "egress" else ("Ingress", "ingress", "from")
    )
    for policy in of_kind("NetworkPolicy").values():
        spec = policy["spec"]
        if policy_type not in spec["policyTypes"] or not _selects(spec["podSelector"], subject):
            continue
        for rule in spec.get(key, []):
            if _peer_allows(rule.get(peers_key, []), peer) and _port_allowed(rule, port):
                return True
    return False


def test_network_policies_allow_exactly_the_documented_edges() -> None:
    """Recompute every pod → pod:port edge the policies admit (egress of the caller AND ingress of
    the callee) and compare with the design's list; a policy that over- or under-allows fails."""
    labels = _pod_labels()
    ports = sorted({port for port in PROCESSES.values()} | {HEALTH_PORT, METRICS_PORT})
    allowed = {
        (source, target, port)
        for source, target in itertools.permutations(labels, 2)
        for port in ports
        if _allowed("egress", labels[source], labels[target], port)
        and _allowed("ingress", labels[target], labels[source], port)
    }
    assert allowed == DOCUMENTED_EDGES


def test_default_deny_covers_every_pod() -> None:
    """Anything not listed is refused: a deny-all policy selects every pod both ways."""
    deny = of_kind("NetworkPolicy")["default-deny"]["spec"]
    assert deny["podSelector"] == {}
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny


def test_external_edges_are_limited() -> None:
    """Data stores: PostgreSQL for the four services with a database, Redis for gateway/payments."""
    policies = of_kind("NetworkPolicy")

    def external(name: str) -> set[tuple[str, int]]:
        found = set()
        for rule in policies[name]["spec"].get("egress", []):
            for peer in rule.get("to", []):
                if "namespaceSelector" in peer:
                    target = next(iter(peer["podSelector"]["matchLabels"].values()))
                    found |= {(target, p["port"]) for p in rule["ports"]}
        return found

    assert external("gateway") == {("redis", 6379)}
    assert external("payments") == {("postgresql", 5432), ("redis", 6379)}
    for name in ("vault", "ledger", "provider", "migrate"):
        assert external(name) == {("postgresql", 5432)}, name
    payments_public = [
        peer["ipBlock"]
        for rule in policies["payments"]["spec"]["egress"]
        for peer in rule.get("to", [])
        if "ipBlock" in peer
    ]
    assert payments_public and all("10.0.0.0/8" in block["except"] for block in payments_public)
