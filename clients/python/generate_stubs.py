"""Regenerates the checked-in gRPC stubs in src/vaultbridge/v1 from the repository's
proto/ with grpcio-tools (the version pinned in tests/python/requirements.txt).

    python clients/python/generate_stubs.py [OUT_DIR]

Without OUT_DIR it rewrites the package's stubs; tests/test_stubs.py calls it with a
temporary directory and compares, so a .proto change without regenerated stubs fails.
"""

from __future__ import annotations

import pathlib
import sys

from grpc_tools import protoc

HERE = pathlib.Path(__file__).resolve().parent
PROTO_ROOT = HERE.parents[1] / "proto"
PROTOS = ["vaultbridge/v1/secrets.proto", "vaultbridge/v1/jira.proto"]


def generate(out_dir: pathlib.Path) -> list[pathlib.Path]:
    """Writes the stubs under out_dir/vaultbridge/v1 and returns their paths."""
    include = pathlib.Path(protoc.__file__).parent / "_proto"
    status = protoc.main([
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(PROTO_ROOT / proto) for proto in PROTOS),
    ])
    if status != 0:
        raise SystemExit(f"protoc failed with status {status}")
    return sorted((out_dir / "vaultbridge" / "v1").glob("*_pb2*.py*"))


def main() -> None:
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "src"
    for path in generate(out):
        print(path)


if __name__ == "__main__":
    main()
