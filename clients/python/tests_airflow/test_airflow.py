"""`vaultbridge.airflow.VaultbridgeBackend` inside a real Apache Airflow (its own
virtualenv, .venv-airflow), through Airflow's own lookups and CLI, against the real
daemon with the file backend. Started by the Rust e2e test
`airflow_reads_connections_and_variables_through_the_daemon`, which sets
`AIRFLOW__SECRETS__BACKEND` and friends and hands the values over in
`VB_AIRFLOW_FIXTURE`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

raw = os.environ.get("VB_AIRFLOW_FIXTURE")
if not raw:
    raise RuntimeError("VB_AIRFLOW_FIXTURE is not set: run through `cargo test --test e2e airflow` (scripts/test)")
FIXTURE: dict[str, Any] = json.loads(raw)

from airflow.exceptions import AirflowNotFoundException  # noqa: E402
from airflow.models import Connection, Variable  # noqa: E402


def test_airflow_is_configured_with_the_backend() -> None:
    from airflow.secrets import BaseSecretsBackend
    from airflow.configuration import conf

    assert conf.get("secrets", "backend") == "vaultbridge.airflow.VaultbridgeBackend"
    from vaultbridge.airflow import VaultbridgeBackend

    assert issubclass(VaultbridgeBackend, BaseSecretsBackend)


def test_a_connection_stored_as_a_uri() -> None:
    conn = Connection.get_connection_from_secrets("jira_uri")
    assert (conn.conn_type, conn.host, conn.login, conn.port, conn.schema) == (
        "http",
        "jira.example.com",
        "dev@example.com",
        8443,
        "rest",
    )
    assert conn.password == FIXTURE["uri_password"]
    assert conn.extra_dejson == {"timeout": 5}


def test_a_connection_stored_as_json() -> None:
    conn = Connection.get_connection_from_secrets("jira_json")
    assert (conn.conn_type, conn.host, conn.login, conn.port) == ("http", "jira.example.com", "dev@example.com", 443)
    assert conn.password == FIXTURE["json_password"]
    assert conn.extra_dejson == {"project": "PIPE"}


def test_a_variable() -> None:
    assert Variable.get("pipeline_project") == "PIPE"
    assert Variable.get("pipeline_settings", deserialize_json=True) == {"batch": 50}


def test_names_without_a_definition_fall_through_to_airflow_s_other_backends() -> None:
    # Set by the Rust side: Airflow's environment backend comes after ours.
    assert os.environ["AIRFLOW_VAR_FROM_ENV"] == "env-value"
    assert Variable.get("from_env") == "env-value"
    assert Connection.get_connection_from_secrets("env_conn").host == "env.example.com"
    with pytest.raises(AirflowNotFoundException):
        Connection.get_connection_from_secrets("nowhere")


def test_an_id_that_cannot_be_a_definition_name_is_not_looked_up() -> None:
    from vaultbridge.airflow import VaultbridgeBackend

    backend = VaultbridgeBackend(address=FIXTURE["address"])
    assert backend.get_conn_value("has space") is None
    assert backend.get_variable("pipeline_project") == "PIPE"
    assert VaultbridgeBackend(address=FIXTURE["address"], variables_prefix=None).get_variable("pipeline_project") is None
    assert backend.get_config("anything") is None, "config lookups are off by default"


def test_the_airflow_cli_reads_a_connection_through_the_daemon() -> None:
    airflow = Path(sys.executable).parent / "airflow"
    result = subprocess.run(
        [str(airflow), "connections", "get", "jira_uri", "--output", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    [conn] = json.loads(result.stdout)
    assert (conn["conn_id"], conn["host"], conn["login"]) == ("jira_uri", "jira.example.com", "dev@example.com")


def test_a_daemon_that_cannot_be_reached_is_an_error_not_a_missing_connection(tmp_path: Path) -> None:
    from vaultbridge import DaemonUnreachable
    from vaultbridge.airflow import VaultbridgeBackend

    backend = VaultbridgeBackend(address=f"unix:{tmp_path / 'none.sock'}", timeout=10)
    with pytest.raises(DaemonUnreachable):
        backend.get_conn_value("jira_uri")
