//! No secret value may reach the daemon's output, even at the most verbose log level.

use crate::harness::{BINARY, ChildGuard, Setup, run_cli};
use std::process::{Command, Stdio};
use std::time::Duration;
use vaultbridge::client::{self, Address};
use vaultbridge::proto::v1::{ListDefinitionsRequest, ResolveBatchRequest, ResolveRequest};

/// Fragments of a value that must not appear in output: each line of 6 or more
/// characters (a multi-line PEM may be logged line by line or escaped).
fn fragments(value: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(value)
        .lines()
        .map(str::trim)
        .filter(|line| line.len() >= 6)
        .map(str::to_owned)
        .collect()
}

/// Resolves every definition one by one, in a batch, and through the CLI, plus some
/// failures, and returns every value it was given.
async fn exercise(address: &Address) -> Vec<Vec<u8>> {
    let mut client = client::connect(address).await.unwrap();
    let names: Vec<String> = client
        .list_definitions(ListDefinitionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .definitions
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert!(!names.is_empty());
    let mut values = Vec::new();
    for name in names.iter().chain(names.iter()) {
        if let Ok(answer) = client
            .resolve(ResolveRequest {
                name: name.clone(),
                ..Default::default()
            })
            .await
        {
            values.push(std::mem::take(
                &mut answer.into_inner().secret.unwrap().value,
            ));
        }
    }
    let mut batch = names.clone();
    batch.extend(["unknown-one".to_owned(), "bad name!".to_owned()]);
    client
        .resolve_batch(ResolveBatchRequest {
            names: batch,
            ..Default::default()
        })
        .await
        .unwrap();
    for name in &names {
        run_cli(&["get", name, "--addr", &address.to_string()], &[]);
    }
    assert!(!values.is_empty());
    values
}

fn assert_clean(output: &str, values: &[Vec<u8>], extra: &[&str]) {
    let mut checked = 0;
    for value in values {
        for fragment in fragments(value) {
            checked += 1;
            assert!(
                !output.contains(&fragment),
                "a value fragment `{fragment}` reached the output"
            );
        }
    }
    for value in extra {
        checked += 1;
        assert!(!output.contains(value), "`{value}` reached the output");
    }
    assert!(checked > 3, "too little was checked");
    assert!(
        output.contains("TRACE") || output.contains("DEBUG"),
        "verbose logging was not on"
    );
}

#[tokio::test]
async fn trace_logging_of_every_e2e_definition_leaks_no_value() {
    let mut setup = Setup::new().env("VB_E2E_TOKEN", "env-leak-token-value \n");
    setup.log = "trace".into();
    let mut daemon = setup.start();
    let values = exercise(&daemon.unix_address()).await;
    let status = daemon.terminate();
    assert_eq!(status.code(), Some(0));
    // Trimming is announced by definition name (the value is checked below).
    let output = daemon.output();
    let warned = output.lines().any(|line| {
        line.contains("removed whitespace") && line.contains("definition=jira-api-token")
    });
    assert!(warned, "no trim warning naming the definition:\n{output}");
    // The raw, untrimmed values too, and the values of keys that were not asked for.
    assert_clean(
        &output,
        &values,
        &[
            "env-leak-token-value",
            "ATATT3x-e2e-token-value",
            "plain-e2e-value",
            "e2e-pem-body",
        ],
    );
}

#[tokio::test]
async fn trace_logging_of_every_example_definition_leaks_no_value() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("example.sock");
    let stdout = dir.path().join("out.log");
    let stderr = dir.path().join("err.log");
    let mut daemon = ChildGuard(
        Command::new(BINARY)
            .arg("serve")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("VAULTBRIDGE_SOCKET", &socket)
            .env("VAULTBRIDGE_LOG", "trace")
            .env("JIRA_API_TOKEN", "example-env-leak-token")
            .env_remove("VAULTBRIDGE_CONFIG")
            .env_remove("VAULTBRIDGE_SECRETS_FILE")
            .stdout(Stdio::from(std::fs::File::create(&stdout).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(&stderr).unwrap()))
            .spawn()
            .unwrap(),
    );
    let address = Address::Unix(socket.clone());
    crate::harness::wait_until(
        Duration::from_secs(20),
        || crate::harness::is_serving(&address),
        || "the example daemon did not start serving".to_owned(),
    );
    let values = exercise(&address).await;
    crate::harness::signal_term(&daemon.0);
    let status = crate::harness::wait_with_timeout(&mut daemon.0, Duration::from_secs(20));
    assert_eq!(status.code(), Some(0));
    let output = format!(
        "{}{}",
        std::fs::read_to_string(stdout).unwrap(),
        std::fs::read_to_string(stderr).unwrap()
    );
    assert!(values.len() >= 6, "every example definition resolved");
    assert_clean(&output, &values, &["example-env-leak-token"]);
}
