"""The Python client of the vaultbridge secret-resolution daemon.

    from vaultbridge import Client

    with Client() as vb:                     # VAULTBRIDGE_ADDR or /tmp/vaultbridge.sock
        token = vb.get("jira-api-token")

`AsyncClient` (in `vaultbridge.aio`, also exported here) is the asyncio variant;
`vaultbridge.airflow.VaultbridgeBackend` serves Apache Airflow connections and variables.
"""

from vaultbridge._calls import DEFAULT_TIMEOUT
from vaultbridge.aio import AsyncClient, AsyncStream
from vaultbridge.client import Client, Stream
from vaultbridge.errors import (
    DaemonUnreachable,
    FailedPrecondition,
    InvalidArgument,
    InvalidName,
    NotFound,
    NotText,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
    VaultbridgeError,
)
from vaultbridge.models import (
    AuthFailureReport,
    CacheOutcome,
    ConnectionEvent,
    ConnectionState,
    ConnectionStatus,
    Definition,
    JiraConnection,
    JiraCredentials,
    Secret,
    WatchEvent,
    WatchEventKind,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "AsyncClient",
    "AsyncStream",
    "AuthFailureReport",
    "CacheOutcome",
    "Client",
    "ConnectionEvent",
    "ConnectionState",
    "ConnectionStatus",
    "DaemonUnreachable",
    "Definition",
    "FailedPrecondition",
    "InvalidArgument",
    "InvalidName",
    "JiraConnection",
    "JiraCredentials",
    "NotFound",
    "NotText",
    "PermissionDenied",
    "Secret",
    "Stream",
    "Unauthenticated",
    "Unavailable",
    "VaultbridgeError",
    "WatchEvent",
    "WatchEventKind",
]
