//! The Python client package (clients/python) against the real daemon: its pytest
//! suite runs in the `.venv` that `scripts/test` prepares, with the client installed by
//! `pip install ./clients/python`. This side starts what the suite calls (the daemon
//! on a socket and TCP, a fake Jira, the Key Vault fake for a denied read) and hands
//! the addresses and the configured values over in `VB_TEST_FIXTURE`.

use crate::fake_jira::FakeJira;
use crate::harness::{Daemon, Setup, set_mode};
use base64::Engine as _;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use vaultbridge_backend_azure::fake::{self, FakeVault, Fault};

const PLAIN: &str = "plain-py-value";
const TOKEN_STORED: &str = "ATATT3x-py-token-value \r\n";
const TOKEN: &str = "ATATT3x-py-token-value";
const PEM: &str = "-----BEGIN KEY-----\nAAAA-py-pem-body\n-----END KEY-----\n";
const WATCHED: &str = "watched-py-initial";
const GUARDED: &str = "guarded-py-value";
/// Not UTF-8, so only `get_bytes` may serve it.
const BINARY: &[u8] = b"\xff\xfebinary-py-\x80value";
const JIRA_EMAIL: &str = "dev@example.com";
const JIRA_OLD: &str = "ATATT3x-py-jira-old-token";
const JIRA_ROTATED: &str = "ATATT3x-py-jira-rotated-token";
const RUNNER_TOKEN: &str = "py-runner-bearer-token-5d1f";

fn write_private(dir: &Path, file: &str, body: &str) {
    let path = dir.join(file);
    std::fs::write(&path, body).expect("write a secrets file");
    set_mode(&path, 0o600);
}

fn config(vault: &FakeVault, jira: &FakeJira) -> String {
    format!(
        r#"server:
  unix_socket: vb.sock
  tcp: 127.0.0.1:0
cache:
  ttl: 10m
backends:
  local:
    type: file
    path: secrets.yaml
  live:
    type: file
    path: live.yaml
    change_check_interval: 0s
  jira-sync-file:
    type: file
    path: jira-sync.yaml
    change_check_interval: 0s
  jira-async-file:
    type: file
    path: jira-async.yaml
    change_check_interval: 0s
  # A path through a regular file: every read fails with ENOTDIR, a temporary error.
  broken:
    type: file
    path: secrets.yaml/nested.yaml
  env:
    type: env
    prefix: VB_PY_
{kv}definitions:
  plain: {{ backend: local, secret: plain }}
  jira-api-token: {{ backend: local, secret: jira, key: api_token, description: Jira token }}
  pem: {{ backend: local, secret: pem, trim: false }}
  missing-entry: {{ backend: local, secret: not-there }}
  missing-key: {{ backend: local, secret: jira, key: api_tokn }}
  not-a-map: {{ backend: local, secret: plain, key: token }}
  watched: {{ backend: live, secret: watched }}
  binary: {{ backend: env, secret: BINARY }}
  unreachable: {{ backend: broken, secret: anything, max_stale: 0s }}
  guarded: {{ backend: kv, secret: guarded }}
  jira-sync-token: {{ backend: jira-sync-file, secret: token }}
  jira-async-token: {{ backend: jira-async-file, secret: token }}
jira:
  connections:
    sync-cloud:
      url: {jira_url}
      deployment: cloud
      email: {JIRA_EMAIL}
      token: jira-sync-token
      project: PIPE
    async-cloud:
      url: {jira_url}
      deployment: cloud
      email: {JIRA_EMAIL}
      token: jira-async-token
"#,
        kv = crate::azure::kv_backend(vault),
        jira_url = jira.url(),
    )
}

fn start(vault: &FakeVault, jira: &FakeJira) -> Daemon {
    let mut setup = Setup::new().env("VB_E2E_AZURE_SECRET", fake::CLIENT_SECRET);
    setup.env_os.push((
        "VB_PY_BINARY".into(),
        std::ffi::OsString::from_vec(BINARY.to_vec()),
    ));
    setup.tcp = true;
    setup.log = "trace".into();
    let dir = setup.dir.path().to_owned();
    write_private(
        &dir,
        "secrets.yaml",
        &format!("plain: \"{PLAIN}\"\njira:\n  api_token: {TOKEN_STORED:?}\npem: {PEM:?}\n"),
    );
    write_private(&dir, "live.yaml", &format!("watched: \"{WATCHED}\"\n"));
    for file in ["jira-sync.yaml", "jira-async.yaml"] {
        write_private(&dir, file, &format!("token: \"{JIRA_OLD}\"\n"));
    }
    let config = config(vault, jira);
    setup.start_with_config(&config)
}

/// A daemon with access rules: over TCP only the bearer token in `runner.token` is
/// known, and it may read `plain` only; on the socket no client entry matches.
fn start_with_access_rules() -> Daemon {
    let mut setup = Setup::new();
    setup.tcp = true;
    write_private(
        setup.dir.path(),
        "runner.token",
        &format!("{RUNNER_TOKEN}\n"),
    );
    setup.start_with_config(
        r#"server:
  unix_socket: vb.sock
  tcp: 127.0.0.1:0
backends:
  local:
    type: file
    path: secrets.yaml
definitions:
  plain: { backend: local, secret: plain }
  pem: { backend: local, secret: pem, trim: false }
clients:
  runner:
    tokens:
      - file: runner.token
    definitions: [plain]
"#,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_suite_passes_against_the_daemon() {
    let vault = FakeVault::start().await;
    vault.put("guarded", GUARDED, None).await;
    // Faults are queued per request and a denial is never cached, so every read the
    // suite makes takes one; far more than it makes.
    for _ in 0..500 {
        vault.inject("guarded", Fault::Forbidden);
    }
    let jira = FakeJira::start(true, "").await;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{JIRA_EMAIL}:{JIRA_ROTATED}"));
    jira.accept(&format!("Basic {basic}"));
    let daemon = start(&vault, &jira);
    let guarded = start_with_access_rules();

    let fixture = serde_json::json!({
        "uds": format!("unix:{}", daemon.socket().display()),
        "tcp": daemon.tcp_address().to_string(),
        "dir": daemon.setup.dir.path(),
        "values": {
            "plain": PLAIN,
            "jira-api-token": TOKEN,
            "pem": PEM,
            "watched": WATCHED,
        },
        "raw_values": [TOKEN_STORED, GUARDED],
        "binary_hex": BINARY.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        "access": {
            "uds": format!("unix:{}", guarded.socket().display()),
            "tcp": guarded.tcp_address().to_string(),
            "token": RUNNER_TOKEN,
            "token_file": guarded.setup.dir.path().join("runner.token"),
            "plain": "plain-e2e-value",
        },
        "jira": {
            "url": jira.url(),
            "email": JIRA_EMAIL,
            "old_token": JIRA_OLD,
            "rotated_token": JIRA_ROTATED,
        },
    });
    crate::python::run_pytest(
        crate::python::python(),
        "tests",
        vec![("VB_TEST_FIXTURE".into(), fixture.to_string())],
        100,
    )
    .await;

    // The daemon's side of "never a value in a log", at trace level, for this run.
    let output = daemon.output();
    for value in [PLAIN, TOKEN, GUARDED, JIRA_OLD, JIRA_ROTATED, WATCHED] {
        assert!(!output.contains(value), "the daemon logged a value");
    }
    assert!(!guarded.output().contains(RUNNER_TOKEN));
}
