//! The Python client's Apache Airflow secrets backend in a real Airflow, installed by
//! `scripts/test` into its own virtualenv (`.venv-airflow`), against the daemon with
//! the file backend. No scheduler: Airflow's own `Connection.get_connection_from_secrets`,
//! `Variable.get` and `airflow connections get`.

use crate::harness::{Setup, set_mode};
use std::path::PathBuf;

const URI_PASSWORD: &str = "s3cr3t-af-uri-token";
const JSON_PASSWORD: &str = "af-json-token";

/// The Airflow virtualenv's Python. Missing is a failure, not a skip.
#[allow(
    clippy::disallowed_methods,
    reason = "the test runner's setting, not daemon config"
)]
fn airflow_python() -> PathBuf {
    let python = std::env::var_os("VAULTBRIDGE_TEST_AIRFLOW_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/.venv-airflow/bin/python"
            ))
        });
    assert!(
        python.exists(),
        "{} does not exist: run `scripts/test` (it creates .venv-airflow with Apache Airflow and the client), or set VAULTBRIDGE_TEST_AIRFLOW_PYTHON",
        python.display()
    );
    python
}

// Multi-threaded only so that run_pytest's blocking wait has a worker of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn airflow_reads_connections_and_variables_through_the_daemon() {
    let python = airflow_python();
    let setup = Setup::new();
    let dir = setup.dir.path().to_owned();
    let secrets = dir.join("airflow.yaml");
    std::fs::write(
        &secrets,
        format!(
            r#"jira_uri: "http://dev%40example.com:{URI_PASSWORD}@jira.example.com:8443/rest?timeout=5"
jira_json: '{{"conn_type": "http", "host": "jira.example.com", "login": "dev@example.com", "password": "{JSON_PASSWORD}", "port": 443, "extra": {{"project": "PIPE"}}}}'
project: "PIPE"
settings: '{{"batch": 50}}'
"#
        ),
    )
    .unwrap();
    set_mode(&secrets, 0o600);
    let daemon = setup.start_with_config(
        r#"server:
  unix_socket: vb.sock
backends:
  local:
    type: file
    path: airflow.yaml
definitions:
  airflow-connections-jira_uri: { backend: local, secret: jira_uri }
  airflow-connections-jira_json: { backend: local, secret: jira_json }
  airflow-variables-pipeline_project: { backend: local, secret: project }
  airflow-variables-pipeline_settings: { backend: local, secret: settings }
"#,
    );
    let address = format!("unix:{}", daemon.socket().display());
    let home = dir.join("airflow-home");
    std::fs::create_dir(&home).unwrap();
    let fixture = serde_json::json!({
        "address": address,
        "uri_password": URI_PASSWORD,
        "json_password": JSON_PASSWORD,
    });
    let env = [
        ("VB_AIRFLOW_FIXTURE", fixture.to_string()),
        ("AIRFLOW_HOME", home.display().to_string()),
        (
            "AIRFLOW__SECRETS__BACKEND",
            "vaultbridge.airflow.VaultbridgeBackend".to_owned(),
        ),
        (
            "AIRFLOW__SECRETS__BACKEND_KWARGS",
            serde_json::json!({ "address": address }).to_string(),
        ),
        ("AIRFLOW__CORE__LOAD_EXAMPLES", "False".to_owned()),
        (
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
            format!("sqlite:///{}", home.join("airflow.db").display()),
        ),
        ("AIRFLOW_VAR_FROM_ENV", "env-value".to_owned()),
        ("AIRFLOW_CONN_ENV_CONN", "http://env.example.com".to_owned()),
    ];
    crate::python::run_pytest(
        python,
        "tests_airflow",
        env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        8,
    )
    .await;
    let output = daemon.output();
    assert!(!output.contains(URI_PASSWORD) && !output.contains(JSON_PASSWORD));
}
