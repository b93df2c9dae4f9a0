"""What the Jira component of a pipeline does with vaultbridge, runnable as is.

    pip install ./clients/python
    python jira_component.py --connection jira-dev [--addr unix:/tmp/vaultbridge.sock]

1. Ask vaultbridge for the connection's credentials.
2. Call Jira with the ready Authorization header.
3. On 401, tell vaultbridge. If the vault now holds a rotated token, vaultbridge returns
   it and the call is retried once; otherwise the connection needs a new token, and the
   component stops with vaultbridge's explanation.

Prints one JSON line on success; exits 2 when the credentials need reauthorization,
1 on other errors.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from typing import Any

from vaultbridge import Client, JiraCredentials, VaultbridgeError


def call_jira(credentials: JiraCredentials, path: str) -> tuple[int, Any]:
    request = urllib.request.Request(credentials.base_url + path, headers=credentials.headers())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, None


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--addr", "--socket", dest="addr", help="the daemon (default: VAULTBRIDGE_ADDR, else /tmp/vaultbridge.sock)")
    parser.add_argument("--connection", required=True)
    args = parser.parse_args()

    try:
        with Client(args.addr) as vaultbridge:
            credentials = vaultbridge.jira_credentials(args.connection)
            for warning in credentials.warnings:
                print(f"warning: {warning}", file=sys.stderr)
            status, account = call_jira(credentials, "/rest/api/2/myself")
            retried = False
            if status == 401:
                report = vaultbridge.report_auth_failure(args.connection)
                if report.credentials is None:
                    print(f"{report.state.status.name}: {report.state.message}", file=sys.stderr)
                    return 2
                status, account = call_jira(report.credentials, "/rest/api/2/myself")
                retried = True
    except VaultbridgeError as err:
        print(f"vaultbridge: {err}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"Jira answered HTTP {status}", file=sys.stderr)
        return 1
    print(json.dumps({"connection": args.connection, "displayName": account.get("displayName"), "retried": retried}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
