"""The checked-in stubs are what grpcio-tools generates from proto/ today."""

from __future__ import annotations

import importlib.util
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
PACKAGE = HERE.parent


def test_checked_in_stubs_match_the_proto(tmp_path: pathlib.Path) -> None:
    spec = importlib.util.spec_from_file_location("generate_stubs", PACKAGE / "generate_stubs.py")
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    fresh = generator.generate(tmp_path)
    assert {p.name for p in fresh} >= {"secrets_pb2.py", "secrets_pb2_grpc.py", "jira_pb2.py", "jira_pb2_grpc.py"}
    checked_in = PACKAGE / "src" / "vaultbridge" / "v1"
    stale = [p.name for p in fresh if (checked_in / p.name).read_bytes() != p.read_bytes()]
    assert not stale, f"regenerate with `python clients/python/generate_stubs.py`: {stale} differ from proto/"
    extra = {p.name for p in checked_in.glob("*_pb2*")} - {p.name for p in fresh}
    assert not extra, f"stubs without a .proto: {extra}"
