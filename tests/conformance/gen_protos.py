"""Regenerate the conformance test protos' bindings: python tests/conformance/gen_protos.py."""

from __future__ import annotations

import pathlib
import sys

import grpc_tools
from grpc_tools import protoc

HERE = pathlib.Path(__file__).resolve().parent
PROTO_ROOT = HERE / "protos"


def main() -> None:
    import google.api

    googleapis = pathlib.Path(next(iter(google.api.__path__))).parent.parent
    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{googleapis}",
            f"-I{well_known}",
            f"--python_out={PROTO_ROOT}",
            f"--grpc_python_out={PROTO_ROOT}",
            *protos,
        ]
    )
    if code:
        sys.exit(code)
    for proto in protos:
        folder = PROTO_ROOT / pathlib.Path(proto).parent
        while folder != PROTO_ROOT:
            (folder / "__init__.py").touch()
            folder = folder.parent


if __name__ == "__main__":
    main()
