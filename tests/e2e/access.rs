//! Access rules end to end: callers known by the kernel's peer credentials on the Unix
//! socket and by bearer tokens over TCP, what each may read, and the audit trail.

use crate::harness::{Daemon, Setup, poll_until, resolve, run_cli};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;
use tonic::Code;
use tonic::service::Interceptor;
use tonic::transport::Channel;
use vaultbridge::client;
use vaultbridge::proto::v1::jira_client::JiraClient;
use vaultbridge::proto::v1::secrets_client::SecretsClient;
use vaultbridge::proto::v1::{
    self as pb, GetCredentialsRequest, InvalidateRequest, ListConnectionsRequest,
    ListDefinitionsRequest, ResolveBatchRequest, WatchRequest, resolve_result::Outcome,
};

/// The values in the harness's secrets file, none of which may reach a log line.
const VALUES: [&str; 4] = [
    "ATATT3x-e2e-token-value",
    "plain-e2e-value",
    "AAAA-e2e-pem-body",
    "dev@example.com-never",
];

const JIRA: &str = "jira:\n  connections:\n    main:\n      url: example.atlassian.net\n      email: dev@example.com\n      token: jira-api-token\n    other:\n      url: other.atlassian.net\n      email: dev@example.com\n      token: jira-api-token\n";

fn own_uid(setup: &Setup) -> u32 {
    std::fs::metadata(setup.dir.path()).unwrap().uid()
}

/// The message must name the caller and the definition, and be the same for a name
/// that exists and one that does not.
fn assert_denied(status: &tonic::Status, name: &str) {
    assert_eq!(status.code(), Code::PermissionDenied, "{name}: {status:?}");
    assert!(
        status
            .message()
            .ends_with(&format!("may not read definition `{name}`")),
        "{name}: {}",
        status.message()
    );
}

fn audit_lines(daemon: &Daemon) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(daemon.setup_dir().join("audit.log")).unwrap_or_default();
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect()
}

fn assert_no_values(text: &str) {
    for value in VALUES {
        assert!(!text.contains(value), "a value reached the output:\n{text}");
    }
}

#[tokio::test]
async fn socket_callers_read_what_their_uid_is_granted_and_every_call_is_audited() {
    let mut setup = Setup::new();
    let uid = own_uid(&setup);
    setup.extra_config = format!(
        "{JIRA}clients:\n  me:\n    uids: [{uid}]\n    definitions: [plain, \"jira-*\"]\n    jira_connections: [main]\naudit:\n  file: audit.log\n"
    );
    let daemon = setup.start();
    let mut client = daemon.client().await;

    assert_eq!(
        resolve(&mut client, "plain").await.unwrap().value,
        b"plain-e2e-value"
    );
    let pem = resolve(&mut client, "pem").await.unwrap_err();
    assert_denied(&pem, "pem");
    let unknown = resolve(&mut client, "no-such-definition")
        .await
        .unwrap_err();
    assert_denied(&unknown, "no-such-definition");
    // The same words, but for the name: nothing tells which of the two exists.
    assert_eq!(
        pem.message().replace("`pem`", "`X`"),
        unknown.message().replace("`no-such-definition`", "`X`")
    );
    assert!(
        pem.message()
            .starts_with(&format!("the caller with uid {uid} and gid "))
    );

    let batch = client
        .resolve_batch(ResolveBatchRequest {
            names: vec!["pem".into(), "plain".into(), "missing-entry".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    let codes: Vec<(String, i32)> = batch
        .iter()
        .map(|result| match &result.outcome {
            Some(Outcome::Secret(_)) => (result.name.clone(), 0),
            Some(Outcome::Error(err)) => (result.name.clone(), err.code),
            None => panic!("no outcome"),
        })
        .collect();
    assert_eq!(
        codes,
        [
            ("pem".to_owned(), Code::PermissionDenied as i32),
            ("plain".to_owned(), 0),
            ("missing-entry".to_owned(), Code::PermissionDenied as i32),
        ]
    );

    let listed: Vec<String> = client
        .list_definitions(ListDefinitionsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .definitions
        .into_iter()
        .map(|definition| definition.name)
        .collect();
    assert_eq!(listed, ["jira-api-token", "jira-email", "plain"]);

    let invalidate = client
        .invalidate(InvalidateRequest {
            target: Some(pb::invalidate_request::Target::Name("pem".into())),
        })
        .await
        .unwrap_err();
    assert_denied(&invalidate, "pem");
    let watch = client
        .watch(WatchRequest {
            names: vec!["plain".into(), "pem".into()],
        })
        .await
        .unwrap_err();
    assert_denied(&watch, "pem");

    let mut jira = JiraClient::new(client::channel(&daemon.unix_address()).await.unwrap());
    let connections: Vec<String> = jira
        .list_connections(ListConnectionsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .connections
        .into_iter()
        .map(|connection| connection.name)
        .collect();
    assert_eq!(connections, ["main"]);
    let credentials = jira
        .get_credentials(GetCredentialsRequest {
            connection: "main".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(credentials.authorization.starts_with("Basic "));
    let other = jira
        .get_credentials(GetCredentialsRequest {
            connection: "other".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::PermissionDenied);
    assert!(
        other
            .message()
            .ends_with("may not read Jira connection `other`")
    );

    // Every resolve, batch item, hand-out and denial has its line, in order.
    let expected = [
        ("Resolve", "plain", "OK"),
        ("Resolve", "pem", "PERMISSION_DENIED"),
        ("Resolve", "no-such-definition", "PERMISSION_DENIED"),
        ("ResolveBatch", "pem", "PERMISSION_DENIED"),
        ("ResolveBatch", "plain", "OK"),
        ("ResolveBatch", "missing-entry", "PERMISSION_DENIED"),
        ("Invalidate", "pem", "PERMISSION_DENIED"),
        ("Watch", "pem", "PERMISSION_DENIED"),
        ("GetCredentials", "main", "OK"),
        ("GetCredentials", "other", "PERMISSION_DENIED"),
    ];
    let mut lines = Vec::new();
    assert!(
        poll_until(Duration::from_secs(10), || {
            lines = audit_lines(&daemon);
            lines.len() >= expected.len()
        }),
        "audit lines: {lines:#?}"
    );
    let seen: Vec<(String, String, String)> = lines
        .iter()
        .map(|line| {
            let target = line
                .get("definition")
                .or_else(|| line.get("jira_connection"))
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            (
                line["rpc"].as_str().unwrap().to_owned(),
                target.to_owned(),
                line["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
        .collect();
    assert_eq!(seen, expected);
    for line in &lines {
        assert_eq!(line["caller"]["kind"], "unix");
        assert_eq!(line["caller"]["uid"], uid);
        assert!(line["caller"]["pid"].is_number());
    }
    assert_eq!(lines[0]["cache"], "miss");
    assert_eq!(lines[4]["cache"], "hit");
    let mode = std::fs::metadata(daemon.setup_dir().join("audit.log"))
        .unwrap()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let audit = std::fs::read_to_string(daemon.setup_dir().join("audit.log")).unwrap();
    assert_no_values(&audit);
    assert_no_values(&daemon.output());
}

#[tokio::test]
async fn a_socket_caller_no_client_matches_reads_nothing() {
    let mut setup = Setup::new();
    let uid = own_uid(&setup);
    setup.extra_config = format!(
        "clients:\n  someone-else:\n    uids: [{}]\n    definitions: [\"*\"]\n",
        uid.wrapping_add(4242)
    );
    let daemon = setup.start();
    let mut client = daemon.client().await;
    assert_denied(&resolve(&mut client, "plain").await.unwrap_err(), "plain");
    let listed = client
        .list_definitions(ListDefinitionsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .definitions;
    assert!(listed.is_empty(), "{listed:?}");
    // The audit trail defaults to stderr, under its own target.
    daemon.wait_for_output("vaultbridge::audit");
    assert!(daemon.output().contains(r#""code":"PERMISSION_DENIED""#));
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
struct Bearer(Option<String>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        Ok(request)
    }
}

async fn tcp_client(
    daemon: &Daemon,
    token: Option<&str>,
) -> SecretsClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>> {
    let channel = client::channel(&daemon.tcp_address()).await.unwrap();
    SecretsClient::with_interceptor(channel, Bearer(token.map(str::to_owned)))
}

async fn tcp_resolve(
    daemon: &Daemon,
    token: Option<&str>,
    name: &str,
) -> Result<pb::Secret, tonic::Status> {
    tcp_client(daemon, token)
        .await
        .resolve(pb::ResolveRequest {
            name: name.into(),
            ..Default::default()
        })
        .await
        .map(|response| response.into_inner().secret.unwrap())
}

#[tokio::test]
async fn tcp_callers_need_a_token_and_a_rotated_token_file_works_without_a_restart() {
    let mut setup = Setup::new();
    setup.tcp = true;
    let token_file = setup.dir.path().join("etl.token");
    std::fs::write(&token_file, "first-e2e-bearer\n").unwrap();
    setup.extra_config =
        "clients:\n  etl:\n    tokens:\n      - file: etl.token\n    definitions: [plain]\n".into();
    let daemon = setup.start();

    let missing = tcp_resolve(&daemon, None, "plain").await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated, "{missing:?}");
    assert!(missing.message().contains("authorization: Bearer <token>"));
    let wrong = tcp_resolve(&daemon, Some("first-e2e-bearex"), "plain")
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    assert!(!wrong.message().contains("bearex"));
    let secret = tcp_resolve(&daemon, Some("first-e2e-bearer"), "plain")
        .await
        .unwrap();
    assert_eq!(secret.value, b"plain-e2e-value");
    assert_denied(
        &tcp_resolve(&daemon, Some("first-e2e-bearer"), "pem")
            .await
            .unwrap_err(),
        "pem",
    );
    // Health stays open to probes without credentials.
    assert!(crate::harness::is_serving(&daemon.tcp_address()));

    // Rotation as a Secret volume does it: a new file swapped in over the old one.
    let next = daemon.setup_dir().join("etl.token.next");
    std::fs::write(&next, "second-e2e-bearer").unwrap();
    std::fs::rename(&next, &token_file).unwrap();
    daemon.wait_for_output("token changed; the new one is in use");
    let secret = tcp_resolve(&daemon, Some("second-e2e-bearer"), "plain")
        .await
        .unwrap();
    assert_eq!(secret.value, b"plain-e2e-value");
    let old = tcp_resolve(&daemon, Some("first-e2e-bearer"), "plain")
        .await
        .unwrap_err();
    assert_eq!(old.code(), Code::Unauthenticated);

    let output = daemon.output();
    assert!(
        output.contains(r#""kind":"token","client":"etl""#),
        "{output}"
    );
    assert!(output.contains(r#""code":"UNAUTHENTICATED""#), "{output}");
    for token in ["first-e2e-bearer", "second-e2e-bearer", "bearex"] {
        assert!(
            !output.contains(token),
            "a token reached the log:\n{output}"
        );
    }
    assert_no_values(&output);
}

#[test]
fn a_tcp_address_other_hosts_can_reach_is_refused_without_tokens() {
    let setup = Setup::new();
    let config = setup.dir.path().join("open.yaml");
    std::fs::write(
        &config,
        "server:\n  tcp: 0.0.0.0:0\nbackends:\n  e:\n    type: env\ndefinitions:\n  a:\n    backend: e\n    secret: A\n",
    )
    .unwrap();
    let (code, _, stderr) = run_cli(&["check", "--config", config.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("server.tcp: `0.0.0.0:0` is reachable from other hosts, and no caller authentication is configured"),
        "{stderr}"
    );
    let (code, _, stderr) = run_cli(&["serve", "--config", config.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    assert!(stderr.contains("is reachable from other hosts"), "{stderr}");
}

/// Runs `vaultbridge ARGS` as user `nobody` (uid 65534) in group 0, which the socket's
/// mode `0660` lets in: a second, real kernel identity on the same socket.
fn run_as_nobody(args: &[&str]) -> (i32, String, String) {
    let output = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=0", "--clear-groups", "--"])
        .arg(crate::harness::BINARY)
        .args(args)
        .env_remove("VAULTBRIDGE_ADDR")
        .output()
        .expect("setpriv (util-linux) runs the CLI as another user");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn two_users_on_one_socket_each_read_only_their_own_definitions() {
    let mut setup = Setup::new();
    assert_eq!(
        own_uid(&setup),
        0,
        "this test switches to another user and needs root, as CI runs"
    );
    // `nobody` must reach the socket through its directory (group 0, no write).
    crate::harness::set_mode(setup.dir.path(), 0o750);
    setup.extra_config = "clients:\n  workload:\n    uids: [65534]\n    definitions: [plain]\n  operator:\n    uids: [0]\n    definitions: [pem]\naudit:\n  file: audit.log\n".into();
    let config = setup.config_text().replace(
        "  unix_socket: vb.sock\n",
        "  unix_socket: vb.sock\n  unix_socket_mode: \"0660\"\n",
    );
    let daemon = setup.start_with_config(&config);
    let socket = daemon.socket();
    let addr = socket.to_str().unwrap();

    let (code, stdout, stderr) = run_as_nobody(&["get", "plain", "--addr", addr]);
    assert_eq!((code, stdout.as_str()), (0, "plain-e2e-value"), "{stderr}");
    let (code, stdout, stderr) = run_as_nobody(&["get", "pem", "--addr", addr]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stderr.contains("the caller with uid 65534 and gid 0")
            && stderr.contains("may not read definition `pem`"),
        "{stderr}"
    );
    // The daemon's own user is another client, with other grants.
    assert_denied(&daemon.resolve("plain").await.unwrap_err(), "plain");
    assert!(daemon.resolve("pem").await.is_ok());

    let mut lines = Vec::new();
    assert!(poll_until(Duration::from_secs(10), || {
        lines = audit_lines(&daemon);
        lines.len() >= 4
    }));
    let callers: Vec<(u64, String, String)> = lines
        .iter()
        .map(|line| {
            (
                line["caller"]["uid"].as_u64().unwrap(),
                line["definition"].as_str().unwrap().to_owned(),
                line["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        callers,
        [
            (65534, "plain".to_owned(), "OK".to_owned()),
            (65534, "pem".to_owned(), "PERMISSION_DENIED".to_owned()),
            (0, "plain".to_owned(), "PERMISSION_DENIED".to_owned()),
            (0, "pem".to_owned(), "OK".to_owned()),
        ]
    );
    assert_eq!(lines[0]["clients"][0], "workload");
    assert_eq!(lines[3]["clients"][0], "operator");
}

#[tokio::test]
async fn a_caller_over_its_rate_limit_gets_resource_exhausted_and_others_are_still_served() {
    let mut setup = Setup::new();
    setup.tcp = true;
    let config = setup.config_text().replace(
        "  shutdown_grace: 5s\n",
        "  shutdown_grace: 5s\n  rate_limit:\n    per_second: 1\n    burst: 3\n",
    );
    let daemon = setup.start_with_config(&config);
    let mut client = daemon.client().await;
    let started = std::time::Instant::now();
    let mut served = 0;
    let mut refused = Vec::new();
    for _ in 0..30 {
        match resolve(&mut client, "plain").await {
            Ok(_) => served += 1,
            Err(status) => refused.push(status),
        }
    }
    // The burst, plus at most one refill per second that passed.
    let refills = started.elapsed().as_secs() + 1;
    assert!(served >= 3 && served <= 3 + refills, "served {served}");
    let status = refused.first().expect("a refusal");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status
            .message()
            .contains("made more than 1 calls a second (bursts up to 3); retry in"),
        "{}",
        status.message()
    );
    // Another caller (TCP from loopback, its own bucket) is served meanwhile.
    let mut tcp = client::connect(&daemon.tcp_address()).await.unwrap();
    assert_eq!(
        resolve(&mut tcp, "plain").await.unwrap().value,
        b"plain-e2e-value"
    );
}
