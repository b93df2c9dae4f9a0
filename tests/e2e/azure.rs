//! The daemon with an Azure Key Vault backend, against the TLS Key Vault fake, on the
//! client-secret credential read from the daemon's environment.

use crate::harness::{Daemon, Setup};
use tonic::Code;
use vaultbridge::proto::v1::ResolveRequest;
use vaultbridge_backend_azure::fake::{self, FakeVault, Fault};

const TOKEN: &str = "ATATT3x-azure-e2e-token";

/// The `kv` backend on the fake, with the client-secret credential read from
/// `VB_E2E_AZURE_SECRET`, as a block under `backends:`.
pub(crate) fn kv_backend(vault: &FakeVault) -> String {
    let port = vault.address().port();
    format!(
        r#"  kv:
    type: azure_key_vault
    vault_url: {vault_url}
    credential: client_secret
    tenant_id: {tenant}
    client_id: {client}
    client_secret_env: VB_E2E_AZURE_SECRET
    authority_host: {authority}
    ca_file: {ca}
    request_timeout: 2s
    resolve:
      {vault_host}: 127.0.0.1:{port}
      {login_host}: 127.0.0.1:{port}
"#,
        vault_url = vault.vault_url(),
        tenant = fake::TENANT,
        client = fake::CLIENT_ID,
        authority = vault.authority_host(),
        ca = vault.ca_file().display(),
        vault_host = fake::VAULT_HOST,
        login_host = fake::LOGIN_HOST,
    )
}

fn config(vault: &FakeVault, definitions: &str) -> String {
    format!(
        "server:\n  unix_socket: vb.sock\nbackends:\n{}definitions:\n{definitions}",
        kv_backend(vault)
    )
}

fn start(vault: &FakeVault, definitions: &str) -> Daemon {
    let mut setup = Setup::new().env("VB_E2E_AZURE_SECRET", fake::CLIENT_SECRET);
    setup.log = "trace".into();
    setup.custom_config = Some(config(vault, definitions));
    setup.start()
}

// Multi-threaded: the fake runs on this test's runtime while the test blocks on the
// daemon's readiness.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_secrets_resolve_through_the_daemon() {
    let vault = FakeVault::start().await;
    let first = vault
        .put("jira-token", &format!("{TOKEN} \r\n"), Some("text/plain"))
        .await;
    vault
        .put(
            "jira-bundle",
            r#"{"email":"dev@example.com","token":"bundle-token"}"#,
            None,
        )
        .await;
    vault.put("guarded", "guarded-value", None).await;
    vault.put("retired", "retired-value", None).await;
    vault.disable("retired");
    let definitions = format!(
        "  jira-token:\n    backend: kv\n    secret: jira-token\n    ttl: 0s\n  jira-email:\n    backend: kv\n    secret: jira-bundle\n    key: email\n  pinned:\n    backend: kv\n    secret: jira-token\n    version_id: {first}\n  missing:\n    backend: kv\n    secret: nope\n  guarded:\n    backend: kv\n    secret: guarded\n  retired:\n    backend: kv\n    secret: retired\n"
    );
    let mut daemon = start(&vault, &definitions);

    let token = daemon.resolve("jira-token").await.unwrap();
    assert_eq!(
        token.value,
        TOKEN.as_bytes(),
        "trailing space and CRLF trimmed"
    );
    assert!(token.trimmed);
    assert_eq!(token.version_id.as_deref(), Some(first.as_str()));
    assert_eq!(
        token.metadata.get("content_type").map(String::as_str),
        Some("text/plain")
    );
    assert_eq!(
        daemon.resolve("jira-email").await.unwrap().value,
        b"dev@example.com"
    );

    // A rotation: a new version set in the vault is served on the next read (ttl 0s),
    // while the pinned definition keeps the old one.
    let second = vault.put("jira-token", "rotated-azure-token", None).await;
    let rotated = daemon.resolve("jira-token").await.unwrap();
    assert_eq!(rotated.value, b"rotated-azure-token");
    assert_eq!(rotated.version_id.as_deref(), Some(second.as_str()));
    assert_eq!(
        daemon.resolve("pinned").await.unwrap().value,
        TOKEN.as_bytes()
    );

    assert_eq!(
        daemon.resolve("missing").await.unwrap_err().code(),
        Code::NotFound
    );
    vault.inject("guarded", Fault::Forbidden);
    let forbidden = daemon.resolve("guarded").await.unwrap_err();
    assert_eq!(
        forbidden.code(),
        Code::PermissionDenied,
        "{}",
        forbidden.message()
    );
    let disabled = daemon.resolve("retired").await.unwrap_err();
    assert_eq!(
        disabled.code(),
        Code::FailedPrecondition,
        "{}",
        disabled.message()
    );
    vault.inject(
        "guarded",
        Fault::Throttled {
            retry_after_seconds: 1,
        },
    );
    assert_eq!(
        daemon.resolve("guarded").await.unwrap().value,
        b"guarded-value",
        "throttled, then served"
    );

    assert_eq!(daemon.terminate().code(), Some(0));
    let output = daemon.output();
    assert!(output.contains("TRACE"), "trace logging was on");
    for value in [
        TOKEN,
        "bundle-token",
        "dev@example.com",
        "rotated-azure-token",
        "guarded-value",
        fake::CLIENT_SECRET,
    ] {
        assert!(
            !output.contains(value),
            "`{value}` reached the daemon's output"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unset_client_secret_variable_stops_the_daemon_with_a_clear_error() {
    let vault = FakeVault::start().await;
    let mut setup = Setup::new();
    setup.env_remove = vec!["VB_E2E_AZURE_SECRET".into()];
    setup.custom_config = Some(config(&vault, "  s:\n    backend: kv\n    secret: s\n"));
    let path = setup.dir.path().join("config.yaml");
    std::fs::write(&path, setup.config_text()).unwrap();
    let mut child = crate::harness::spawn_serve(&setup, &path);
    let status = crate::harness::wait_with_timeout(&mut child, std::time::Duration::from_secs(20));
    assert_eq!(status.code(), Some(1));
    let stderr = std::fs::read_to_string(setup.dir.path().join("stderr.log")).unwrap();
    assert!(
        stderr.contains("`VB_E2E_AZURE_SECRET` is not set"),
        "{stderr}"
    );
}

/// The fake's authorized GETs of one secret (the unauthorized first request of the
/// Key Vault challenge handshake is not an attempt to read).
fn reads_of(vault: &FakeVault, secret: &str) -> usize {
    let prefix = format!("/secrets/{secret}");
    vault
        .seen()
        .iter()
        .filter(|seen| seen.method == "GET" && seen.authorized && seen.path.starts_with(&prefix))
        .count()
}

/// Issue 11's scenario 7: Key Vault throttles with 429 and Retry-After. The official
/// client waits as told before each retry, and twenty callers arriving meanwhile share
/// the one call, so the vault sees exactly the attempts the config allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_waited_out_as_told_with_the_calls_bounded() {
    let vault = FakeVault::start().await;
    vault.put("busy", "busy-value", None).await;
    vault.inject(
        "busy",
        Fault::Throttled {
            retry_after_seconds: 1,
        },
    );
    vault.inject(
        "busy",
        Fault::Throttled {
            retry_after_seconds: 1,
        },
    );
    let config = config(&vault, "  busy:\n    backend: kv\n    secret: busy\n").replace(
        "    request_timeout: 2s\n",
        "    request_timeout: 2s\n    operation_timeout: 20s\n    max_attempts: 3\n",
    );
    let mut setup = Setup::new().env("VB_E2E_AZURE_SECRET", fake::CLIENT_SECRET);
    setup.custom_config = Some(config);
    let daemon = setup.start();
    let started = std::time::Instant::now();
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let mut client = daemon.client().await;
        callers.spawn(async move {
            client
                .resolve(ResolveRequest {
                    name: "busy".into(),
                    ..Default::default()
                })
                .await
                .map(|answer| answer.into_inner().secret.unwrap().text.take())
        });
    }
    while let Some(answer) = callers.join_next().await {
        assert_eq!(
            answer.unwrap().expect("served after the throttling"),
            Some("busy-value".to_owned())
        );
    }
    // Two waits of the one second Retry-After asked for, at least.
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "answered after {:?}: Retry-After was not honoured",
        started.elapsed()
    );
    assert_eq!(
        reads_of(&vault, "busy"),
        3,
        "two throttled attempts and one answer"
    );
}

/// Issue 11's scenario 5, on Key Vault: a 403 (the daemon's access revoked) is a
/// permanent answer; the value cached before it is dropped, never served stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_access_fails_closed_instead_of_serving_the_cached_value() {
    let vault = FakeVault::start().await;
    vault.put("revoked", "revoked-value", None).await;
    let daemon = start(
        &vault,
        "  revoked:\n    backend: kv\n    secret: revoked\n    ttl: 0s\n",
    );
    assert_eq!(
        daemon.resolve("revoked").await.unwrap().text.as_deref(),
        Some("revoked-value")
    );
    vault.inject("revoked", Fault::Forbidden);
    let denied = daemon.resolve("revoked").await.expect_err("fail closed");
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(!denied.message().contains("revoked-value"));
}
