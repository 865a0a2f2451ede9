"""Regenerate the Python bindings (`_pb2.py`, `_pb2_grpc.py`, `.pyi`) for every proto in protos/.

Usage: python scripts/gen_protos.py [OUT_DIR]

OUT_DIR defaults to protos/ (bindings are committed beside their sources). The freshness test
generates into a temporary directory and compares it with what is committed.
"""

from __future__ import annotations

import pathlib
import sys

import grpc_tools
from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"


def googleapis_include() -> pathlib.Path:
    """Folder holding google/api/*.proto as shipped by googleapis-common-protos."""
    import google.api  # noqa: PLC0415 - located at run time on purpose

    return pathlib.Path(next(iter(google.api.__path__))).parent.parent


def generate(out_dir: pathlib.Path) -> None:
    """Generate bindings for every proto under protos/ into out_dir."""
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    wkt_include = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{googleapis_include()}",
        f"-I{wkt_include}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *protos,
    ]
    # The mypy-protobuf plugins live beside this interpreter (the venv), which may not be on PATH.
    bin_dir = pathlib.Path(sys.executable).parent
    args[1:1] = [
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
    ]
    code = protoc.main(args)
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}")
    # Package markers so the bindings import as regular packages (mypy and pytest need them).
    for proto in protos:
        folder = out_dir / pathlib.Path(proto).parent
        while folder != out_dir:
            (folder / "__init__.py").touch()
            folder = folder.parent


if __name__ == "__main__":
    generate(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else PROTO_ROOT)
