"""The committed bindings of the conformance test protos match a fresh generation."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent


def test_test_proto_bindings_are_fresh(tmp_path: pathlib.Path) -> None:
    copy = tmp_path / "conformance"
    shutil.copytree(
        HERE / "protos", copy / "protos", ignore=shutil.ignore_patterns("*_pb2*.py", "__pycache__")
    )
    shutil.copy(HERE / "gen_protos.py", copy / "gen_protos.py")
    subprocess.run([sys.executable, str(copy / "gen_protos.py")], check=True)
    generated = sorted((copy / "protos").rglob("*_pb2*.py"))
    assert len(generated) >= 2, "nothing was generated"
    for fresh in generated:
        committed = HERE / "protos" / fresh.relative_to(copy / "protos")
        assert committed.read_text() == fresh.read_text(), (
            f"stale: run python tests/conformance/gen_protos.py ({committed.name})"
        )
