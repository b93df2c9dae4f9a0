"""What the Jira component of a pipeline does with vaultbridge, runnable as is.

    python jira_component.py --socket /tmp/vaultbridge.sock --connection jira-dev

1. Ask vaultbridge for the connection's credentials (vaultbridge.v1.Jira/GetCredentials).
2. Call Jira with the ready Authorization header.
3. On 401, tell vaultbridge (ReportAuthFailure). If the vault now holds a rotated token,
   vaultbridge returns it and the call is retried once; otherwise the connection needs a
   new token, and the component stops with vaultbridge's explanation.

Prints one JSON line on success; exits 2 when the credentials need reauthorization,
1 on other errors. Needs grpcio and grpcio-tools (stubs are generated from ../../proto
at start, so the example always matches the published contract).
"""

import argparse
import importlib
import json
import pathlib
import sys
import tempfile
import urllib.error
import urllib.request

import grpc
from grpc_tools import protoc

PROTO_ROOT = pathlib.Path(__file__).resolve().parents[2] / "proto"


def load_stubs(out_dir):
    include = pathlib.Path(protoc.__file__).parent / "_proto"
    status = protoc.main([
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        str(PROTO_ROOT / "vaultbridge" / "v1" / "jira.proto"),
    ])
    if status != 0:
        raise SystemExit(f"protoc failed with status {status}")
    sys.path.insert(0, str(out_dir))
    return (
        importlib.import_module("vaultbridge.v1.jira_pb2"),
        importlib.import_module("vaultbridge.v1.jira_pb2_grpc"),
    )


def call_jira(credentials, path):
    request = urllib.request.Request(
        credentials.base_url + path,
        headers={"Authorization": credentials.authorization, "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", default="/tmp/vaultbridge.sock")
    parser.add_argument("--connection", required=True)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as out:
        pb, rpc = load_stubs(pathlib.Path(out))
        # Over a Unix socket, send "localhost" as the HTTP/2 authority (see the README).
        options = [("grpc.default_authority", "localhost")]
        with grpc.insecure_channel(f"unix:{args.socket}", options=options) as channel:
            jira = rpc.JiraStub(channel)
            credentials = jira.GetCredentials(pb.GetCredentialsRequest(connection=args.connection), timeout=30)
            for warning in credentials.warnings:
                print(f"warning: {warning}", file=sys.stderr)

            status, account = call_jira(credentials, "/rest/api/2/myself")
            retried = False
            if status == 401:
                report = jira.ReportAuthFailure(pb.ReportAuthFailureRequest(connection=args.connection), timeout=30)
                if not (report.token_changed and report.HasField("credentials")):
                    state = pb.ConnectionStatus.Name(report.state.status)
                    print(f"{state}: {report.state.message}", file=sys.stderr)
                    return 2
                credentials, retried = report.credentials, True
                status, account = call_jira(credentials, "/rest/api/2/myself")
            if status != 200:
                print(f"Jira answered HTTP {status}", file=sys.stderr)
                return 1
            print(json.dumps({
                "connection": args.connection,
                "displayName": account.get("displayName"),
                "retried": retried,
            }))
            return 0


if __name__ == "__main__":
    sys.exit(main())
