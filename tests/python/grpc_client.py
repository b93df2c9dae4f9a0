"""Calls a running vaultbridge daemon with Python's grpcio, the way a pipeline runner
written in Python would, and prints what it saw as one JSON document.

Usage: grpc_client.py SOCKET_PATH

Stubs are generated from the repository's proto/ at run time, so the test exercises the
published contract rather than a copy of it.
"""

import importlib
import json
import pathlib
import sys
import tempfile

import grpc
from grpc_tools import protoc

REPO = pathlib.Path(__file__).resolve().parents[2]


def load_stubs(out_dir: pathlib.Path):
    include = pathlib.Path(protoc.__file__).parent / "_proto"
    status = protoc.main([
        "grpc_tools.protoc",
        f"-I{REPO / 'proto'}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        str(REPO / "proto" / "vaultbridge" / "v1" / "secrets.proto"),
    ])
    if status != 0:
        raise SystemExit(f"protoc failed with status {status}")
    # Regular packages, so that these stubs win over the ones the installed Python
    # client (clients/python, also named `vaultbridge`) carries.
    for package in (out_dir / "vaultbridge", out_dir / "vaultbridge" / "v1"):
        (package / "__init__.py").touch()
    sys.path.insert(0, str(out_dir))
    messages = importlib.import_module("vaultbridge.v1.secrets_pb2")
    services = importlib.import_module("vaultbridge.v1.secrets_pb2_grpc")
    assert pathlib.Path(messages.__file__).is_relative_to(out_dir), messages.__file__
    return messages, services


def main() -> None:
    socket_path = sys.argv[1]
    with tempfile.TemporaryDirectory() as out:
        pb, rpc = load_stubs(pathlib.Path(out))
        # grpcio sends the socket path as the HTTP/2 :authority, which the daemon's
        # HTTP/2 stack (h2) rejects as malformed; "localhost" is the convention for
        # Unix sockets (grpc-go, Kubernetes). See README, "Calling over the socket".
        options = [("grpc.default_authority", "localhost")]
        with grpc.insecure_channel(f"unix:{socket_path}", options=options) as channel:
            stub = rpc.SecretsStub(channel)
            report = {}

            secret = stub.Resolve(pb.ResolveRequest(name="jira-api-token"), timeout=10).secret
            report["resolve"] = {
                "name": secret.name,
                "text": secret.text,
                "value_hex": secret.value.hex(),
                "backend": secret.backend,
                "trimmed": secret.trimmed,
                "cache": pb.CacheOutcome.Name(secret.cache),
                "has_fetched_at": secret.HasField("fetched_at"),
            }

            try:
                stub.Resolve(pb.ResolveRequest(name="no-such-definition"), timeout=10)
                report["unknown"] = "no error"
            except grpc.RpcError as err:
                report["unknown"] = {"code": err.code().name, "details": err.details()}

            batch = stub.ResolveBatch(
                pb.ResolveBatchRequest(names=["plain", "missing-entry"]), timeout=10
            )
            report["batch"] = [
                {
                    "name": result.name,
                    "outcome": result.WhichOneof("outcome"),
                    "code": result.error.code if result.HasField("error") else 0,
                }
                for result in batch.results
            ]

            listing = stub.ListDefinitions(pb.ListDefinitionsRequest(), timeout=10)
            report["definitions"] = [d.name for d in listing.definitions]

            print(json.dumps(report, sort_keys=True))


if __name__ == "__main__":
    main()
