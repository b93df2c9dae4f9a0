//! Python's grpcio, a second and independent gRPC implementation, against the daemon.

use crate::harness::Setup;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The virtualenv `scripts/test` prepares. Missing is a failure, not a skip.
#[allow(
    clippy::disallowed_methods,
    reason = "the test runner's setting, not daemon config"
)]
pub(crate) fn python() -> PathBuf {
    let python = std::env::var_os("VAULTBRIDGE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python")));
    assert!(
        python.exists(),
        "{} does not exist: run `scripts/test` (it creates .venv with grpcio), or set VAULTBRIDGE_TEST_PYTHON",
        python.display()
    );
    python
}

/// The Python client package, whose pytest suites `run_pytest` runs.
pub(crate) fn client_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/clients/python"))
}

/// The counts in pytest's JUnit report: (tests, failures + errors, skipped).
fn junit_counts(report: &str) -> (u64, u64, u64) {
    let suite = report
        .split("<testsuite ")
        .nth(1)
        .and_then(|rest| rest.split('>').next())
        .expect("a <testsuite> element");
    let attribute = |name: &str| -> u64 {
        let value = suite
            .split_whitespace()
            .find_map(|pair| pair.strip_prefix(&format!("{name}=\"")))
            .unwrap_or_else(|| panic!("no {name} in the JUnit report: {suite}"));
        value.trim_end_matches('"').parse().expect("a count")
    };
    (
        attribute("tests"),
        attribute("failures") + attribute("errors"),
        attribute("skipped"),
    )
}

/// Runs pytest on `tests` with `python`, and fails unless every test ran and passed.
pub(crate) async fn run_pytest(
    python: std::path::PathBuf,
    tests: &'static str,
    env: Vec<(String, String)>,
    minimum: u64,
) {
    let report_dir = tempfile::tempdir().unwrap();
    let report = report_dir.path().join("junit.xml");
    let mut command = std::process::Command::new(python);
    command
        .current_dir(client_dir())
        .args(["-m", "pytest", tests, "-p", "no:cacheprovider", "-q", "-rs"])
        .arg(format!("--junitxml={}", report.display()))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .envs(env);
    // Blocking: the fakes keep serving on the runtime's other worker meanwhile.
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("run pytest");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "pytest failed:\n{printed}");
    let (tests, failed, skipped) = junit_counts(&std::fs::read_to_string(&report).unwrap());
    assert_eq!((failed, skipped), (0, 0), "{printed}");
    assert!(
        tests >= minimum,
        "only {tests} tests ran (at least {minimum} expected):\n{printed}"
    );
}

#[test]
fn python_grpcio_client_resolves_over_the_unix_socket() {
    let python = python();
    let daemon = Setup::new().start();
    let output = Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/grpc_client.py"
        ))
        .arg(daemon.socket())
        .output()
        .expect("run the Python client");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Python client failed:\n{stderr}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the Python client prints JSON");

    let resolve = &report["resolve"];
    assert_eq!(resolve["name"], "jira-api-token");
    assert_eq!(resolve["text"], "ATATT3x-e2e-token-value");
    assert_eq!(resolve["value_hex"], hex("ATATT3x-e2e-token-value"));
    assert_eq!(resolve["backend"], "local");
    assert_eq!(resolve["trimmed"], true);
    assert_eq!(resolve["cache"], "CACHE_OUTCOME_MISS");
    assert_eq!(resolve["has_fetched_at"], true);

    assert_eq!(report["unknown"]["code"], "NOT_FOUND");
    assert!(
        report["unknown"]["details"]
            .as_str()
            .unwrap()
            .contains("no-such-definition")
    );

    assert_eq!(report["batch"][0]["outcome"], "secret");
    assert_eq!(report["batch"][1]["outcome"], "error");
    assert_eq!(report["batch"][1]["code"], 5, "NOT_FOUND");

    let definitions = report["definitions"].as_array().unwrap();
    assert!(definitions.iter().any(|d| d == "jira-api-token"));
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}
