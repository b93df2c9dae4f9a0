"""An Apache Airflow secrets backend that serves connections and variables from
vaultbridge definitions, so every DAG's `Connection` and `Variable` lookup goes through
the daemon's cache.

    [secrets]
    backend = vaultbridge.airflow.VaultbridgeBackend
    backend_kwargs = {"address": "unix:/run/vaultbridge/vaultbridge.sock"}

(or `AIRFLOW__SECRETS__BACKEND` / `AIRFLOW__SECRETS__BACKEND_KWARGS`). Connection
`jira_default` is the definition `airflow-connections-jira_default`, holding the
connection as a URI (`http://user:pass@host`) or as Airflow's JSON form; variable
`project` is `airflow-variables-project`, the same convention as Airflow's own AWS and
Azure backends. A prefix of None turns that kind of lookup off.

Airflow asks the next backend (environment, metastore) when this one returns None,
which it does for a definition that does not exist; any other error (the daemon
unreachable, a backend denied) is raised, so a misconfiguration is not mistaken for a
missing connection.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from airflow.secrets import BaseSecretsBackend

from vaultbridge.client import Client
from vaultbridge.errors import NotFound

# The daemon's rule for definition names; a conn_id outside it cannot be a definition.
_NAME = re.compile(r"[A-Za-z0-9._/-]{1,256}")


class VaultbridgeBackend(BaseSecretsBackend):  # type: ignore[misc]
    """Airflow connections, variables and (optionally) config from vaultbridge.

    :param address: the daemon's address (default: `VAULTBRIDGE_ADDR`, else the
        default socket), in the forms `vaultbridge.Client` takes.
    :param connections_prefix: prepended to a conn_id to name its definition.
    :param variables_prefix: prepended to a variable's key.
    :param config_prefix: prepended to a config key; None (the default) serves none.
    :param timeout: seconds per call to the daemon.
    :param token_file: a file holding the bearer token, for a daemon that requires
        one over TCP (re-read on every call). A literal `token` is accepted too, but
        keeps the token in Airflow's configuration.
    """

    def __init__(
        self,
        address: str | None = None,
        connections_prefix: str | None = "airflow-connections-",
        variables_prefix: str | None = "airflow-variables-",
        config_prefix: str | None = None,
        timeout: float = 10.0,
        token: str | None = None,
        token_file: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.address = address
        self.connections_prefix = connections_prefix
        self.variables_prefix = variables_prefix
        self.config_prefix = config_prefix
        self.timeout = timeout
        self._token = token
        self._token_file = token_file
        self._client: Client | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Client:
        """The client, connected on first use and shared by all threads."""
        with self._lock:
            if self._client is None:
                self._client = Client(
                    self.address, timeout=self.timeout, token=self._token, token_file=self._token_file
                )
            return self._client

    def _lookup(self, prefix: str | None, key: str) -> str | None:
        if prefix is None:
            return None
        name = prefix + key
        if not _NAME.fullmatch(name):
            return None
        try:
            return self.client.get(name)
        except NotFound:
            return None

    def get_conn_value(self, conn_id: str, team_name: str | None = None) -> str | None:
        """The connection's URI or JSON text, or None when there is no definition."""
        return self._lookup(self.connections_prefix, conn_id)

    def get_variable(self, key: str, team_name: str | None = None) -> str | None:
        """The variable's value, or None when there is no definition."""
        return self._lookup(self.variables_prefix, key)

    def get_config(self, key: str) -> str | None:
        """A config value, when `config_prefix` is set."""
        return self._lookup(self.config_prefix, key)
