//! Jira credentials through the daemon: GetCredentials, ListConnections, and
//! `vaultbridge jira creds`.

use crate::harness::{Daemon, Setup, run_cli};
use tonic::Code;
use vaultbridge::client;
use vaultbridge::proto::v1::{
    self as pb, GetCredentialsRequest, ListConnectionsRequest, jira_client::JiraClient,
};

pub(crate) const TOKEN: &str = "ATATT3x-jira-e2e-token";
pub(crate) const PAT: &str = "pat-e2e-data-center-token";
use crate::fake_jira::{CLOUD_ID, FakeJira};

/// The connections' secrets file, private as a secrets file should be.
pub(crate) fn write_secrets(setup: &Setup, body: &str) {
    let path = setup.dir.path().join("jira.yaml");
    std::fs::write(&path, body).unwrap();
    crate::harness::set_mode(&path, 0o600);
}

pub(crate) fn date_in(days: i64) -> String {
    (time::OffsetDateTime::now_utc().date() + time::Duration::days(days)).to_string()
}

fn start(site: &FakeJira) -> Daemon {
    let mut setup = Setup::new();
    write_secrets(
        &setup,
        &format!(
            "jira:\n  email: \"dev@example.com\"\n  token: \"{TOKEN} \"\npat: \"{PAT}\"\nprefixed: \"Bearer prefixed-e2e-token\"\n"
        ),
    );
    setup.log = "trace".into();
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
    secret: jira
    key: token
  jira-email:
    backend: local
    secret: jira
    key: email
  pat:
    backend: local
    secret: pat
  prefixed:
    backend: local
    secret: prefixed
jira:
  connections:
    cloud-main:
      url: example.atlassian.net/
      email: dev@example.com
      token: jira-token
      expires_at: {soon}
      project: PIPE
    dc:
      url: https://jira.corp.example/jira/rest/api/2
      token: pat
    scoped:
      url: {site_url}
      deployment: cloud_scoped
      email_definition: jira-email
      token: jira-token
    expired:
      url: https://old.atlassian.net
      email: dev@example.com
      token: jira-token
      expires_at: {past}
    prefixed:
      url: https://pasted.atlassian.net
      email: dev@example.com
      token: prefixed
"#,
        soon = date_in(3),
        past = date_in(-10),
        site_url = site.url(),
    ));
    setup.start()
}

pub(crate) async fn credentials(
    daemon: &Daemon,
    connection: &str,
) -> Result<pb::GetCredentialsResponse, tonic::Status> {
    let channel = client::channel(&daemon.unix_address()).await.unwrap();
    JiraClient::new(channel)
        .get_credentials(GetCredentialsRequest {
            connection: connection.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

pub(crate) fn basic(email: &str, token: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{email}:{token}"))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_ready_to_use_for_each_deployment() {
    let site = FakeJira::start(true, "").await;
    let mut daemon = start(&site);

    let cloud = credentials(&daemon, "cloud-main").await.unwrap();
    assert_eq!(cloud.deployment, pb::JiraDeployment::Cloud as i32);
    assert_eq!(cloud.base_url, "https://example.atlassian.net");
    assert_eq!(cloud.scheme, pb::AuthScheme::Basic as i32);
    assert_eq!(cloud.username, "dev@example.com");
    assert_eq!(cloud.token, TOKEN, "the trailing space is trimmed");
    assert_eq!(cloud.authorization, basic("dev@example.com", TOKEN));
    assert_eq!(cloud.project, "PIPE");
    assert_eq!(cloud.days_left, Some(3));
    assert!(
        cloud.warnings.iter().any(|w| w.contains("in 3 days")),
        "{:?}",
        cloud.warnings
    );

    let dc = credentials(&daemon, "dc").await.unwrap();
    assert_eq!(dc.base_url, "https://jira.corp.example/jira");
    assert_eq!(dc.scheme, pb::AuthScheme::Bearer as i32);
    assert_eq!(dc.authorization, format!("Bearer {PAT}"));
    assert!(dc.username.is_empty());
    assert!(dc.warnings.is_empty(), "{:?}", dc.warnings);

    let scoped = credentials(&daemon, "scoped").await.unwrap();
    assert_eq!(
        scoped.base_url,
        format!("https://api.atlassian.com/ex/jira/{CLOUD_ID}")
    );
    assert_eq!(scoped.site_url, site.url());
    assert_eq!(scoped.authorization, basic("dev@example.com", TOKEN));
    credentials(&daemon, "scoped").await.unwrap();
    let lookups = site
        .requests()
        .iter()
        .filter(|path| *path == "/_edge/tenant_info")
        .count();
    assert_eq!(lookups, 1, "the cloud id is looked up once");

    let expired = credentials(&daemon, "expired").await.unwrap();
    assert_eq!(expired.days_left, Some(-10));
    assert!(
        expired
            .warnings
            .iter()
            .any(|w| w.contains("expired") && w.contains("10 days ago")),
        "{:?}",
        expired.warnings
    );

    let prefixed = credentials(&daemon, "prefixed").await.unwrap();
    assert!(
        prefixed
            .warnings
            .iter()
            .any(|w| w.contains("`Basic ` or `Bearer `")),
        "{:?}",
        prefixed.warnings
    );
    assert!(
        prefixed
            .warnings
            .iter()
            .all(|w| !w.contains("prefixed-e2e-token"))
    );

    let unknown = credentials(&daemon, "nope").await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert!(unknown.message().contains("`nope`"));

    let channel = client::channel(&daemon.unix_address()).await.unwrap();
    let listed = JiraClient::new(channel)
        .list_connections(ListConnectionsRequest {})
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = listed.connections.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["cloud-main", "dc", "expired", "prefixed", "scoped"]);
    let printed = format!("{listed:?}");
    assert!(!printed.contains(TOKEN) && !printed.contains(PAT));

    assert_eq!(daemon.terminate().code(), Some(0));
    let output = daemon.output();
    assert!(
        output.contains("removed the REST API path"),
        "URL fixes are logged at start"
    );
    for value in [
        TOKEN,
        PAT,
        "prefixed-e2e-token",
        &basic("dev@example.com", TOKEN)[6..],
    ] {
        assert!(
            !output.contains(value),
            "`{value}` reached the daemon's output"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jira_creds_prints_shell_lines_and_warnings_on_stderr() {
    let site = FakeJira::start(true, "").await;
    let daemon = start(&site);
    let addr = format!("unix:{}", daemon.socket().display());
    let (code, stdout, stderr) = run_cli(
        &[
            "jira",
            "creds",
            "cloud-main",
            "--format",
            "env",
            "--addr",
            &addr,
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        String::from_utf8(stdout).unwrap(),
        format!(
            "JIRA_URL='https://example.atlassian.net'\nJIRA_EMAIL='dev@example.com'\nJIRA_API_TOKEN='{TOKEN}'\nJIRA_PROJECT='PIPE'\n"
        )
    );
    assert!(
        stderr.contains("warning:") && stderr.contains("in 3 days"),
        "{stderr}"
    );
    assert!(!stderr.contains(TOKEN));
    let (code, stdout, stderr) = run_cli(&["jira", "creds", "nope", "--addr", &addr], &[]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    assert!(stderr.contains("NotFound"), "{stderr}");
}
