"""Contracts: committed bindings are fresh, buf lint is clean, every public RPC has a binding."""

from __future__ import annotations

import filecmp
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
GENERATED_SUFFIXES = ("_pb2.py", "_pb2_grpc.py", "_pb2.pyi", "_pb2_grpc.pyi", "__init__.py")


def _generated(folder: pathlib.Path) -> dict[str, pathlib.Path]:
    return {
        str(path.relative_to(folder)): path
        for path in folder.rglob("*")
        if path.is_file() and path.name.endswith(GENERATED_SUFFIXES)
    }


def test_committed_bindings_match_a_fresh_generation(tmp_path: pathlib.Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), str(tmp_path)],
        check=True,
        capture_output=True,
    )
    fresh, committed = _generated(tmp_path), _generated(ROOT / "protos")
    assert sorted(fresh) == sorted(committed), "generated file set differs: run `make protos`"
    stale = [name for name in fresh if not filecmp.cmp(fresh[name], committed[name], shallow=False)]
    assert not stale, f"stale bindings (run `make protos`): {stale}"


def test_buf_lint_is_clean() -> None:
    buf = ROOT / "node_modules" / ".bin" / "buf"
    if not buf.exists():
        buf_path = shutil.which("buf")
        if buf_path is None:
            pytest.fail("buf is not installed: run `make setup`")
        buf = pathlib.Path(buf_path)
    result = subprocess.run([str(buf), "lint"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_payments_rpc_has_an_http_binding_and_internal_services_none() -> None:
    from clearhouse.ledger.v1 import ledger_pb2
    from clearhouse.provider.v1 import provider_pb2
    from clearhouse.vault.v1 import vault_pb2
    from google.api import annotations_pb2
    from google.protobuf import descriptor_pool

    from payments_svc.bootstrap import SERVICE_NAMES

    pool = descriptor_pool.Default()
    missing = []
    for name in SERVICE_NAMES:
        for method in pool.FindServiceByName(name).methods:
            if not method.GetOptions().HasExtension(annotations_pb2.http):
                missing.append(method.full_name)
    assert not missing, f"public RPCs without google.api.http: {missing}"
    for module in (ledger_pb2, vault_pb2, provider_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                assert not method.GetOptions().HasExtension(annotations_pb2.http), method.full_name


def test_every_message_field_and_rpc_is_documented() -> None:
    """Every proto element carries a leading comment (they become the OpenAPI descriptions)."""
    image = ROOT / "protos"
    undocumented: list[str] = []
    for proto in sorted(image.rglob("*.proto")):
        text = proto.read_text().splitlines()
        for number, line in enumerate(text):
            stripped = line.strip()
            is_declaration = stripped.startswith(("message ", "service ", "rpc ", "enum ")) or (
                stripped.endswith(";")
                and "=" in stripped
                and not stripped.startswith(("option", "//", "syntax", "package", "import"))
                and not stripped.startswith(("post:", "get:", "body:", "response_body:", "delete:"))
            )
            if is_declaration and "(google.api.http)" not in stripped:
                previous = text[number - 1].strip() if number else ""
                if not previous.startswith("//"):
                    undocumented.append(f"{proto.relative_to(ROOT)}:{number + 1}: {stripped}")
    assert not undocumented, "\n".join(undocumented[:20])
