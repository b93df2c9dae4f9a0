//! Definitions with `sources`, through the real daemon, Azure Key Vault (the TLS fake)
//! and AWS Secrets Manager (moto): a team mid-migration reads the new vault first and
//! the old one for what is not copied yet. Which source served is read from every
//! response; which vault was asked is counted by the vaults themselves (moto's request
//! recording, the fake's request log) and by the daemon's metrics, never timed.

use crate::azure::kv_backend;
use crate::fault_proxy::{Fault, FaultProxy};
use crate::harness::{Daemon, Setup, resolve, wait_until_async};
use crate::metrics::{http_get, sample_in};
use crate::resilience::{moto_address, seed};
use std::time::Duration;
use tonic::Code;
use vaultbridge::proto::v1::{CacheOutcome, ListDefinitionsRequest};
use vaultbridge_backend_aws::moto::{self, Moto};
use vaultbridge_backend_azure::fake::{self, FakeVault, Fault as VaultFault};

/// The daemon with `kv` (the fake) and `aws` (moto at `aws_endpoint`), metrics on.
fn start(vault: &FakeVault, aws_endpoint: &str, aws_extra: &str, definitions: &str) -> Daemon {
    let config = format!(
        r#"server:
  unix_socket: vb.sock
  metrics:
    address: 127.0.0.1:0
cache:
  negative_ttl: 0s
backends:
{kv}  aws:
    type: aws_secrets_manager
    region: {region}
    endpoint_url: {aws_endpoint}
    connect_timeout: 1s
    attempt_timeout: 2s
    operation_timeout: 3s
    max_attempts: 1
{aws_extra}definitions:
{definitions}"#,
        kv = kv_backend(vault),
        region = moto::REGION,
    );
    let mut setup = Setup::new()
        .env("AWS_ACCESS_KEY_ID", moto::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", moto::SECRET_KEY)
        .env("VB_E2E_AZURE_SECRET", fake::CLIENT_SECRET);
    setup.env_remove = vec!["AWS_PROFILE".into(), "AWS_SESSION_TOKEN".into()];
    setup.custom_config = Some(config);
    setup.start()
}

/// A definition reading `first` from `a`, then `second` from `b`.
fn two_sources(name: &str, a: &str, first: &str, b: &str, second: &str, extra: &str) -> String {
    format!(
        "  {name}:\n    sources:\n      - backend: {a}\n        secret: {first}\n      - backend: {b}\n        secret: {second}\n{extra}"
    )
}

/// Requests the fake vault received for `secret` (any version).
fn vault_reads(vault: &FakeVault, secret: &str) -> usize {
    let path = format!("/secrets/{secret}");
    vault
        .seen()
        .iter()
        .filter(|seen| {
            seen.path.trim_end_matches('/') == path || seen.path.starts_with(&format!("{path}/"))
        })
        .count()
}

fn metric(daemon: &Daemon, series: &str) -> f64 {
    let (status, body) = http_get(daemon.metrics_address(), "/metrics");
    assert!(status.contains("200"), "{status}");
    sample_in(&body, series).unwrap_or(0.0)
}

/// Log lines of `message` about `definition`.
fn logged(daemon: &Daemon, message: &str, definition: &str) -> usize {
    let field = format!("definition={definition} ");
    daemon
        .output()
        .lines()
        .filter(|line| line.contains(message) && line.contains(&field))
        .count()
}

const FALLBACK_LOG: &str = "a fallback source serves the definition";
const BACK_LOG: &str = "the definition is served by its first source again";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_mid_migration_reads_key_vault_first_and_aws_for_what_is_not_moved_yet() {
    let vault = FakeVault::start().await;
    let moto = Moto::start();
    let aws = moto.client().await;
    vault.put("moved", "moved-kv-value", None).await;
    vault.put("guarded", "guarded-kv-value", None).await;
    seed(&aws, "moved", "moved-aws-value").await;
    seed(&aws, "not-moved", "not-moved-aws-value").await;
    seed(&aws, "guarded", "guarded-aws-value").await;
    let definitions = [
        two_sources("moved", "kv", "moved", "aws", "moved", ""),
        two_sources("new-only", "kv", "moved", "aws", "never-seeded", ""),
        two_sources(
            "not-moved",
            "kv",
            "not-moved",
            "aws",
            "not-moved",
            "    ttl: 0s\n",
        ),
        two_sources("guarded", "kv", "guarded", "aws", "guarded", ""),
        two_sources("nowhere", "kv", "nowhere", "aws", "nowhere", ""),
    ]
    .concat();
    let daemon = start(&vault, &moto.endpoint(), "", &definitions);
    let mut client = daemon.client().await;

    // In the new vault: served from it, and the old one is not asked.
    let aws_calls = moto.calls("GetSecretValue");
    for name in ["moved", "new-only"] {
        let secret = resolve(&mut client, name).await.expect(name);
        assert_eq!(secret.value, b"moved-kv-value", "{name}");
        assert_eq!(
            (secret.source, secret.backend.as_str()),
            (0, "kv"),
            "{name}"
        );
    }
    assert_eq!(moto.calls("GetSecretValue"), aws_calls, "AWS not asked");

    // Not in the new vault yet: the old one serves, and the response says so.
    for _ in 0..3 {
        let secret = resolve(&mut client, "not-moved").await.expect("not-moved");
        assert_eq!(secret.value, b"not-moved-aws-value");
        assert_eq!((secret.source, secret.backend.as_str()), (1, "aws"));
        assert_eq!(
            secret.cache,
            CacheOutcome::Miss as i32,
            "ttl 0s: read each time"
        );
    }
    assert_eq!(
        vault_reads(&vault, "not-moved"),
        3,
        "Key Vault asked first each time"
    );
    assert_eq!(moto.calls("GetSecretValue"), aws_calls + 3);
    assert_eq!(
        metric(
            &daemon,
            r#"vaultbridge_fallbacks_total{backend="kv",reason="not_found"}"#
        ),
        3.0
    );
    daemon.wait_for_output("definition=not-moved ");
    assert_eq!(
        logged(&daemon, FALLBACK_LOG, "not-moved"),
        1,
        "logged once, not per read:\n{}",
        daemon.output()
    );

    // Key Vault denies: the denial is the answer, and AWS is never asked.
    vault.inject("guarded", VaultFault::Forbidden);
    let aws_calls = moto.calls("GetSecretValue");
    let aws_ok = r#"vaultbridge_backend_calls_total{backend="aws",operation="fetch",outcome="ok"}"#;
    let aws_ok_before = metric(&daemon, aws_ok);
    let denied = resolve(&mut client, "guarded").await.expect_err("denied");
    assert_eq!(
        denied.code(),
        Code::PermissionDenied,
        "{}",
        denied.message()
    );
    assert!(denied.message().contains("`kv`"), "{}", denied.message());
    assert_eq!(moto.calls("GetSecretValue"), aws_calls, "AWS untouched");
    assert_eq!(metric(&daemon, aws_ok), aws_ok_before, "AWS untouched");

    // In neither: NOT_FOUND, naming the first source.
    let missing = resolve(&mut client, "nowhere").await.expect_err("nowhere");
    assert_eq!(missing.code(), Code::NotFound, "{}", missing.message());
    assert!(missing.message().contains("`kv`"), "{}", missing.message());

    // ListDefinitions shows every source in order.
    let listed = client
        .list_definitions(ListDefinitionsRequest {})
        .await
        .expect("listed")
        .into_inner();
    let not_moved = listed
        .definitions
        .iter()
        .find(|definition| definition.name == "not-moved")
        .expect("listed");
    let sources: Vec<(&str, &str, &str)> = not_moved
        .sources
        .iter()
        .map(|s| {
            (
                s.backend.as_str(),
                s.backend_type.as_str(),
                s.secret.as_str(),
            )
        })
        .collect();
    assert_eq!(
        sources,
        [
            ("kv", "azure_key_vault", "not-moved"),
            ("aws", "aws_secrets_manager", "not-moved")
        ]
    );

    // The secret is copied to Key Vault: the next read is served from it, logged once.
    vault.put("not-moved", "not-moved-kv-value", None).await;
    let secret = resolve(&mut client, "not-moved").await.expect("moved now");
    assert_eq!(secret.value, b"not-moved-kv-value");
    assert_eq!((secret.source, secret.backend.as_str()), (0, "kv"));
    resolve(&mut client, "not-moved").await.expect("again");
    daemon.wait_for_output(BACK_LOG);
    assert_eq!(logged(&daemon, BACK_LOG, "not-moved"), 1);
    assert_eq!(logged(&daemon, FALLBACK_LOG, "not-moved"), 1);
}

/// AWS first, behind a fault proxy; Key Vault second. While AWS is down Key Vault
/// serves fresh values (not stale ones); once AWS answers again, the first read after
/// the cached value's TTL returns to it: one AWS call, and Key Vault is not asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_is_down_is_passed_over_and_the_first_read_after_it_recovers_returns() {
    let vault = FakeVault::start().await;
    let moto = Moto::start();
    seed(&moto.client().await, "tok", "tok-aws-value").await;
    vault.put("tok", "tok-kv-value", None).await;
    let proxy = FaultProxy::start(moto_address(&moto)).await;
    // No breaker on AWS here: with one, the first read after recovery could fall within
    // its cool-down and go to Key Vault once more (covered by the resolver's tests).
    let definitions = two_sources(
        "tok",
        "aws",
        "tok",
        "kv",
        "tok",
        "    ttl: 1s\n    refresh_ahead: off\n",
    );
    let daemon = start(
        &vault,
        &format!("http://{}", proxy.address()),
        "    breaker_failures: 0\n",
        &definitions,
    );
    let mut client = daemon.client().await;
    let secret = resolve(&mut client, "tok").await.expect("from AWS");
    assert_eq!(
        (secret.source, secret.value.as_slice()),
        (0, &b"tok-aws-value"[..])
    );

    proxy.set(Fault::Reset);
    let secret = wait_until_async(
        Duration::from_secs(30),
        async || {
            let secret = resolve(&mut client, "tok").await.expect("served");
            (secret.source == 1).then_some(secret)
        },
        || "Key Vault never served while AWS was down".to_owned(),
    )
    .await;
    assert_eq!(secret.value, b"tok-kv-value");
    assert_eq!(secret.backend, "kv");
    assert!(
        !secret.stale,
        "a fresh value from the next source, not a stale one"
    );
    assert_eq!(
        metric(
            &daemon,
            r#"vaultbridge_fallbacks_total{backend="aws",reason="unavailable"}"#
        ),
        1.0
    );

    proxy.set(Fault::Pass);
    let (aws_calls, kv_reads) = (moto.calls("GetSecretValue"), vault_reads(&vault, "tok"));
    let secret = wait_until_async(
        Duration::from_secs(30),
        async || {
            let secret = resolve(&mut client, "tok").await.expect("served");
            (secret.source == 0).then_some(secret)
        },
        || "never back to AWS".to_owned(),
    )
    .await;
    assert_eq!(secret.value, b"tok-aws-value");
    assert_eq!(secret.cache, CacheOutcome::Miss as i32);
    assert_eq!(
        moto.calls("GetSecretValue"),
        aws_calls + 1,
        "back on the first read after recovery"
    );
    assert_eq!(
        vault_reads(&vault, "tok"),
        kv_reads,
        "Key Vault not asked again"
    );
    assert_eq!(
        logged(&daemon, FALLBACK_LOG, "tok"),
        1,
        "{}",
        daemon.output()
    );
    assert_eq!(logged(&daemon, BACK_LOG, "tok"), 1, "{}", daemon.output());
}
