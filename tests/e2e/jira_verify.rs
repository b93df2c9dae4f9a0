//! Jira connection checks through the daemon: VerifyConnection, ReportAuthFailure and the
//! states they lead to, against the fake Jira.

use crate::fake_jira::FakeJira;
use crate::harness::{Daemon, Setup, run_cli};
use crate::jira::{PAT, TOKEN, basic, credentials, date_in, write_secrets};
use pb::{ConnectionStatus, ReportAuthFailureRequest, VerifyConnectionRequest};
use vaultbridge::client;
use vaultbridge::proto::v1::{self as pb, ListConnectionsRequest, jira_client::JiraClient};

const ROTATED: &str = "ATATT3x-rotated-e2e-token";

fn start_with(cloud: &FakeJira, dc: &FakeJira, extra: &str) -> Daemon {
    let mut setup = Setup::new();
    write_secrets(
        &setup,
        &format!("jira_token: \"{TOKEN} \"\npat: \"{PAT}\"\n"),
    );
    setup.custom_config = Some(format!(
        r#"server:
  unix_socket: vb.sock
backends:
  local:
    type: file
    path: jira.yaml
definitions:
  jira-token:
    backend: local
    secret: jira_token
  pat:
    backend: local
    secret: pat
jira:
  failure_threshold: 3
  connections:
    cloud:
      url: {cloud_url}
      deployment: cloud
      email: dev@example.com
      token: jira-token
    dc:
      url: {dc_url}
      token: pat
    wrong-path:
      url: {dc_root}
      token: pat
{extra}"#,
        cloud_url = cloud.url(),
        dc_url = dc.url(),
        dc_root = dc.url().trim_end_matches("/jira"),
    ));
    setup.start()
}

pub(crate) async fn jira(daemon: &Daemon) -> JiraClient<tonic::transport::Channel> {
    JiraClient::new(client::channel(&daemon.unix_address()).await.unwrap())
}

pub(crate) async fn verify(daemon: &Daemon, connection: &str) -> pb::ConnectionState {
    jira(daemon)
        .await
        .verify_connection(VerifyConnectionRequest {
            connection: connection.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .state
        .unwrap()
}

async fn report(daemon: &Daemon, connection: &str) -> pb::ReportAuthFailureResponse {
    jira(daemon)
        .await
        .report_auth_failure(ReportAuthFailureRequest {
            connection: connection.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

async fn next_event(
    stream: &mut tonic::Streaming<pb::ConnectionEvent>,
) -> (String, ConnectionStatus) {
    let event = tokio::time::timeout(std::time::Duration::from_secs(20), stream.message())
        .await
        .expect("an event")
        .unwrap()
        .expect("the stream is open");
    (event.connection, status(&event.state.unwrap()))
}

pub(crate) fn status(state: &pb::ConnectionState) -> ConnectionStatus {
    ConnectionStatus::try_from(state.status).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_basic_and_data_center_bearer_verify_connected() {
    let cloud = FakeJira::start(true, "").await;
    let dc = FakeJira::start(false, "/jira").await;
    cloud.accept(&basic("dev@example.com", TOKEN));
    dc.accept(&format!("Bearer {PAT}"));
    let daemon = start_with(&cloud, &dc, "");
    assert!(cloud.is_cloud());

    // The stored token has a trailing space; the header carries it trimmed.
    let state = verify(&daemon, "cloud").await;
    assert_eq!(
        status(&state),
        ConnectionStatus::Connected,
        "{}",
        state.message
    );
    assert_eq!(state.display_name, "Dev Person");
    assert_eq!(state.account_id, "5b10a2844c20165700ede21g");
    assert_eq!(state.project_keys, ["PIPE", "OPS"]);
    assert!(state.last_verified_unix.is_some());

    let state = verify(&daemon, "dc").await;
    assert_eq!(
        status(&state),
        ConnectionStatus::Connected,
        "{}",
        state.message
    );
    assert!(state.account_id.is_empty());
    assert_eq!(state.project_keys, ["PIPE", "DATA"]);

    let wrong = verify(&daemon, "wrong-path").await;
    assert_eq!(status(&wrong), ConnectionStatus::Failed);
    assert!(wrong.message.contains("context path"), "{}", wrong.message);

    cloud.throttle_once();
    let throttled = verify(&daemon, "cloud").await;
    assert_eq!(
        status(&throttled),
        ConnectionStatus::Connected,
        "429 honoured, then served: {}",
        throttled.message
    );

    cloud.captcha(true);
    let captcha = verify(&daemon, "cloud").await;
    assert_eq!(status(&captcha), ConnectionStatus::Failed);
    assert!(captcha.message.contains("CAPTCHA"), "{}", captcha.message);
    cloud.captcha(false);

    let listed = jira(&daemon)
        .await
        .list_connections(ListConnectionsRequest {})
        .await
        .unwrap()
        .into_inner();
    let dc_state = listed
        .connections
        .iter()
        .find(|c| c.name == "dc")
        .unwrap()
        .state
        .clone()
        .unwrap();
    assert_eq!(status(&dc_state), ConnectionStatus::Connected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_token_is_picked_up_after_a_reported_failure() {
    let cloud = FakeJira::start(true, "").await;
    let dc = FakeJira::start(false, "/jira").await;
    cloud.accept(&basic("dev@example.com", TOKEN));
    let daemon = start_with(&cloud, &dc, "");
    let first = credentials(&daemon, "cloud").await.unwrap();
    assert_eq!(first.token, TOKEN);

    // The token is revoked in Jira; the vault has not been updated yet.
    cloud.accept(&basic("dev@example.com", ROTATED));
    let same = report(&daemon, "cloud").await;
    assert!(!same.token_changed);
    assert!(same.credentials.is_none());
    let state = same.state.unwrap();
    assert_eq!(status(&state), ConnectionStatus::NeedsReauthorization);
    assert!(state.message.contains("same token"), "{}", state.message);

    // Someone stores the new token; the next report picks it up.
    std::fs::write(
        daemon.setup.dir.path().join("jira.yaml"),
        format!("jira_token: \"{ROTATED}\"\npat: \"{PAT}\"\n"),
    )
    .unwrap();
    let rotated = report(&daemon, "cloud").await;
    assert!(rotated.token_changed);
    let state = rotated.state.unwrap();
    assert_eq!(
        status(&state),
        ConnectionStatus::Connected,
        "{}",
        state.message
    );
    assert_eq!(state.consecutive_failures, 0);
    let credentials = rotated.credentials.unwrap();
    assert_eq!(credentials.token, ROTATED);
    assert_eq!(credentials.authorization, basic("dev@example.com", ROTATED));
    // Components asking afresh get the new token without reconfiguration.
    assert_eq!(
        crate::jira::credentials(&daemon, "cloud")
            .await
            .unwrap()
            .token,
        ROTATED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_refused_token_ends_failed_after_the_threshold() {
    let cloud = FakeJira::start(true, "").await;
    let dc = FakeJira::start(false, "/jira").await;
    cloud.accept("Basic nobody");
    let daemon = start_with(&cloud, &dc, "");
    let refused = verify(&daemon, "cloud").await;
    assert_eq!(
        status(&refused),
        ConnectionStatus::NeedsReauthorization,
        "{}",
        refused.message
    );
    assert_eq!(refused.consecutive_failures, 1);
    let second = report(&daemon, "cloud").await.state.unwrap();
    assert_eq!(status(&second), ConnectionStatus::NeedsReauthorization);
    let third = report(&daemon, "cloud").await.state.unwrap();
    assert_eq!(
        status(&third),
        ConnectionStatus::Failed,
        "{}",
        third.message
    );
    assert_eq!(third.consecutive_failures, 3);
    assert!(
        third.message.contains("3 times in a row"),
        "{}",
        third.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_stream_sees_each_change_and_ends_at_shutdown() {
    let cloud = FakeJira::start(true, "").await;
    let dc = FakeJira::start(false, "/jira").await;
    cloud.accept(&basic("dev@example.com", TOKEN));
    let mut daemon = start_with(&cloud, &dc, "");
    let mut stream = jira(&daemon)
        .await
        .watch_connections(pb::WatchConnectionsRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut snapshot = Vec::new();
    for _ in 0..3 {
        snapshot.push(next_event(&mut stream).await);
    }
    assert_eq!(
        snapshot,
        [
            ("cloud".to_owned(), ConnectionStatus::Unknown),
            ("dc".to_owned(), ConnectionStatus::Unknown),
            ("wrong-path".to_owned(), ConnectionStatus::Unknown),
        ]
    );
    verify(&daemon, "cloud").await;
    assert_eq!(
        next_event(&mut stream).await,
        ("cloud".to_owned(), ConnectionStatus::Connected)
    );
    cloud.accept("Basic nobody");
    verify(&daemon, "cloud").await;
    assert_eq!(
        next_event(&mut stream).await,
        ("cloud".to_owned(), ConnectionStatus::NeedsReauthorization)
    );
    verify(&daemon, "wrong-path").await;
    assert_eq!(
        next_event(&mut stream).await,
        ("wrong-path".to_owned(), ConnectionStatus::Failed)
    );

    let exit = tokio::task::spawn_blocking(move || daemon.terminate());
    let end = tokio::time::timeout(std::time::Duration::from_secs(20), stream.message())
        .await
        .expect("the stream ends at shutdown");
    assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
    assert_eq!(exit.await.unwrap().code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jira_verify_prints_a_row_per_connection_and_fails_unless_all_connected() {
    let cloud = FakeJira::start(true, "").await;
    let dc = FakeJira::start(false, "/jira").await;
    cloud.accept(&basic("dev@example.com", TOKEN));
    dc.accept(&format!("Bearer {PAT}"));
    let daemon = start_with(&cloud, &dc, "");
    let addr = format!("unix:{}", daemon.socket().display());
    let (code, stdout, stderr) = run_cli(&["jira", "verify", "--addr", &addr], &[]);
    let table = String::from_utf8(stdout).unwrap();
    assert_eq!(code, 1, "wrong-path fails: {table}{stderr}");
    assert!(table.starts_with("CONNECTION"), "{table}");
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap()
            .to_owned()
    };
    let cloud_row = row("cloud");
    for expected in ["cloud", "CONNECTED", "Dev Person", "PIPE,OPS"] {
        assert!(cloud_row.contains(expected), "{cloud_row}");
    }
    assert!(
        row("dc").contains("data_center") && row("dc").contains("PIPE,DATA"),
        "{table}"
    );
    assert!(row("wrong-path").contains("FAILED"), "{table}");
    assert!(
        stderr.contains("wrong-path:") && stderr.contains("context path"),
        "{stderr}"
    );
    assert!(!table.contains(TOKEN) && !stderr.contains(TOKEN));

    let (code, _, stderr) = run_cli(&["jira", "verify", "cloud", "dc", "--addr", &addr], &[]);
    assert_eq!(code, 0, "{stderr}");
}

/// The example Jira component, run as a pipeline would run it.
fn run_example(daemon: &Daemon, connection: &str) -> (i32, String, String) {
    let output = std::process::Command::new(crate::python::python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/python/jira_component.py"
        ))
        .args([
            "--socket",
            daemon.socket().to_str().unwrap(),
            "--connection",
            connection,
        ])
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

// Multi-threaded: the fake Jira keeps serving on the other worker while the
// example runs as a child process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_example_component_calls_jira_and_reports_a_401() {
    let cloud = FakeJira::start(true, "").await;
    let dc = FakeJira::start(false, "/jira").await;
    cloud.accept(&basic("dev@example.com", TOKEN));
    let daemon = start_with(&cloud, &dc, "");

    let (code, stdout, stderr) = run_example(&daemon, "cloud");
    assert_eq!(code, 0, "{stderr}");
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(result["displayName"], "Dev Person");
    assert_eq!(result["retried"], false);

    // Revoked in Jira, not yet replaced in the vault: the component reports the 401
    // and stops with vaultbridge's explanation.
    cloud.accept(&basic("dev@example.com", ROTATED));
    let (code, _, stderr) = run_example(&daemon, "cloud");
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("NEEDS_REAUTHORIZATION") && stderr.contains("same token"),
        "{stderr}"
    );
    assert!(!stderr.contains(TOKEN) && !stderr.contains(ROTATED));

    // Once the rotated token is in the vault, the component works again, unchanged.
    std::fs::write(
        daemon.setup.dir.path().join("jira.yaml"),
        format!("jira_token: \"{ROTATED}\"\npat: \"{PAT}\"\n"),
    )
    .unwrap();
    let (code, stdout, stderr) = run_example(&daemon, "cloud");
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Dev Person"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_nobody_answers_for_is_unreachable() {
    let cloud = FakeJira::start(true, "").await;
    let dc = FakeJira::start(false, "/jira").await;
    // Bound but not listening for the whole test: refused, and no other process
    // can start answering on it.
    let refusing = vaultbridge_backend_core::conformance::RefusingAddress::bind();
    let closed = refusing.address();
    let extra = format!(
        "    gone:\n      url: http://{closed}\n      deployment: cloud\n      email: dev@example.com\n      token: jira-token\n"
    );
    let daemon = start_with(&cloud, &dc, &extra);
    let state = verify(&daemon, "gone").await;
    assert_eq!(
        status(&state),
        ConnectionStatus::Unreachable,
        "{}",
        state.message
    );
    assert!(
        state.message.contains("cannot reach Jira"),
        "{}",
        state.message
    );
    assert_eq!(
        state.consecutive_failures, 0,
        "unreachable is not a refusal"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_past_its_expiry_date_needs_reauthorization_without_a_call() {
    let cloud = FakeJira::start(true, "").await;
    let dc = FakeJira::start(false, "/jira").await;
    cloud.accept(&basic("dev@example.com", TOKEN));
    let extra = format!(
        "    old:\n      url: {}\n      deployment: cloud\n      email: dev@example.com\n      token: jira-token\n      expires_at: {}\n",
        cloud.url(),
        date_in(-1)
    );
    let daemon = start_with(&cloud, &dc, &extra);
    let state = verify(&daemon, "old").await;
    assert_eq!(status(&state), ConnectionStatus::NeedsReauthorization);
    assert!(state.message.contains("expired on"), "{}", state.message);
    assert!(cloud.requests().is_empty(), "no call with an expired token");
}
