use crate::harness::Setup;
use std::time::Duration;
use tonic::Code;
use tonic::transport::Channel;
use vaultbridge::client;
use vaultbridge::proto::v1::secrets_client::SecretsClient;
use vaultbridge::proto::v1::{
    self as pb, CacheOutcome, InvalidateRequest, ListDefinitionsRequest, ResolveBatchRequest,
    ResolveRequest, resolve_result::Outcome,
};

fn resolve_request(name: &str) -> ResolveRequest {
    ResolveRequest {
        name: name.into(),
        ..Default::default()
    }
}

/// Resolves `name`, which must succeed.
async fn resolved(client: &mut SecretsClient<Channel>, name: &str) -> pb::Secret {
    client
        .resolve(resolve_request(name))
        .await
        .unwrap_or_else(|status| panic!("{name}: {status}"))
        .into_inner()
        .secret
        .expect("a secret in the response")
}

#[tokio::test]
async fn resolves_over_the_unix_socket_and_over_tcp() {
    let mut setup = Setup::new().env("VB_E2E_TOKEN", "env-e2e-token\r\n");
    setup.tcp = true;
    let daemon = setup.start();
    for address in [daemon.unix_address(), daemon.tcp_address()] {
        let mut client = client::connect(&address).await.unwrap();
        let secret = resolved(&mut client, "jira-api-token").await;
        assert_eq!(secret.name, "jira-api-token");
        assert_eq!(secret.value, b"ATATT3x-e2e-token-value");
        assert_eq!(secret.text.as_deref(), Some("ATATT3x-e2e-token-value"));
        assert_eq!(secret.backend, "local");
        assert!(
            secret.trimmed,
            "the stored token ends in a space and a newline"
        );
        assert!(secret.fetched_at.is_some());
        let env = client
            .resolve(resolve_request("env-token"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(env.secret.unwrap().value, b"env-e2e-token");
    }
}

#[tokio::test]
async fn the_second_resolve_is_a_cache_hit_with_the_same_fetch_time() {
    let daemon = Setup::new().start();
    let mut client = daemon.client().await;
    let first = resolved(&mut client, "plain").await;
    let second = resolved(&mut client, "plain").await;
    assert_eq!(first.cache, CacheOutcome::Miss as i32);
    assert_eq!(second.cache, CacheOutcome::Hit as i32);
    assert_eq!(first.fetched_at, second.fetched_at);
    assert!(!second.trimmed);
}

#[tokio::test]
async fn trim_false_keeps_the_value_byte_for_byte() {
    let daemon = Setup::new().start();
    let mut client = daemon.client().await;
    let pem = resolved(&mut client, "pem").await;
    assert_eq!(
        pem.value,
        b"-----BEGIN KEY-----\nAAAA-e2e-pem-body\n-----END KEY-----\n"
    );
    assert!(!pem.trimmed);
}

#[tokio::test]
async fn errors_carry_the_documented_codes_and_names() {
    let daemon = Setup::new().start();
    let mut client = daemon.client().await;
    let status = |name: &str| {
        let mut client = client.clone();
        let name = name.to_owned();
        async move { client.resolve(resolve_request(&name)).await.unwrap_err() }
    };

    let unknown = status("no-such-definition").await;
    assert_eq!(unknown.code(), Code::NotFound);
    assert!(
        unknown.message().contains("`no-such-definition`"),
        "{}",
        unknown.message()
    );

    let missing = status("missing-entry").await;
    assert_eq!(missing.code(), Code::NotFound);
    assert!(
        missing.message().contains("`missing-entry`") && missing.message().contains("`local`"),
        "names definition and backend: {}",
        missing.message()
    );

    let missing_key = status("missing-key").await;
    assert_eq!(missing_key.code(), Code::NotFound);
    for name in ["api_tokn", "`api_token`", "`email`", "`url`"] {
        assert!(
            missing_key.message().contains(name),
            "{}",
            missing_key.message()
        );
    }
    assert!(
        !missing_key.message().contains("ATATT3x"),
        "{}",
        missing_key.message()
    );

    let not_a_map = status("not-a-map").await;
    assert_eq!(not_a_map.code(), Code::FailedPrecondition);
    assert!(!not_a_map.message().contains("plain-e2e-value"));

    let unset = status("env-unset").await;
    assert_eq!(unset.code(), Code::NotFound);
    assert!(
        unset.message().contains("VB_E2E_UNSET"),
        "{}",
        unset.message()
    );

    for bad in ["", "has space", "semi;colon", &"x".repeat(257)] {
        let err = status(bad).await;
        assert_eq!(
            err.code(),
            Code::InvalidArgument,
            "{bad:?}: {}",
            err.message()
        );
    }
    let _ = client.resolve(resolve_request("plain")).await.unwrap();
}

#[tokio::test]
async fn a_batch_returns_one_result_or_error_per_name_in_order() {
    let daemon = Setup::new().start();
    let mut client = daemon.client().await;
    let names = ["plain", "missing-entry", "jira-email", "bad name", "plain"];
    let results = client
        .resolve_batch(ResolveBatchRequest {
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(results.len(), names.len());
    for (result, name) in results.iter().zip(names) {
        assert_eq!(result.name, name);
    }
    let code = |r: &pb::ResolveResult| match &r.outcome {
        Some(Outcome::Error(err)) => Some(err.code),
        _ => None,
    };
    assert!(
        matches!(&results[0].outcome, Some(Outcome::Secret(s)) if s.value == b"plain-e2e-value")
    );
    assert_eq!(code(&results[1]), Some(Code::NotFound as i32));
    assert!(
        matches!(&results[2].outcome, Some(Outcome::Secret(s)) if s.value == b"dev@example.com")
    );
    assert_eq!(code(&results[3]), Some(Code::InvalidArgument as i32));
    assert!(matches!(&results[4].outcome, Some(Outcome::Secret(_))));

    let too_many = client
        .resolve_batch(ResolveBatchRequest {
            names: vec!["plain".to_owned(); 257],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(too_many.code(), Code::InvalidArgument);
    assert!(too_many.message().contains("256"), "{}", too_many.message());
}

#[tokio::test]
async fn list_definitions_describes_without_values() {
    let daemon = Setup::new().start();
    let mut client = daemon.client().await;
    let response = client
        .list_definitions(ListDefinitionsRequest {})
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = response
        .definitions
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted: {names:?}");
    let token = response
        .definitions
        .iter()
        .find(|d| d.name == "jira-api-token")
        .unwrap();
    assert_eq!(token.backend, "local");
    assert_eq!(token.backend_type, "file");
    assert_eq!(token.description, "Jira token");
    assert_eq!(token.trim, pb::TrimPolicy::Trim as i32);
    assert_eq!(token.key.as_deref(), Some("api_token"));
    assert_eq!(token.ttl_seconds, 600);
    let pem = response
        .definitions
        .iter()
        .find(|d| d.name == "pem")
        .unwrap();
    assert_eq!(pem.trim, pb::TrimPolicy::None as i32);
    let printed = format!("{response:?}");
    assert!(!printed.contains("e2e-token-value") && !printed.contains("plain-e2e-value"));
}

#[tokio::test]
async fn invalidate_forces_the_next_resolve_to_read_the_backend() {
    let daemon = Setup::new().start();
    let mut client = daemon.client().await;
    resolved(&mut client, "plain").await;
    assert_eq!(
        resolved(&mut client, "plain").await.cache,
        CacheOutcome::Hit as i32
    );
    client
        .invalidate(InvalidateRequest {
            target: Some(pb::invalidate_request::Target::Name("plain".into())),
        })
        .await
        .unwrap();
    assert_eq!(
        resolved(&mut client, "plain").await.cache,
        CacheOutcome::Miss as i32
    );
    client
        .invalidate(InvalidateRequest {
            target: Some(pb::invalidate_request::Target::All(true)),
        })
        .await
        .unwrap();
    assert_eq!(
        resolved(&mut client, "plain").await.cache,
        CacheOutcome::Miss as i32
    );
    let unknown = client
        .invalidate(InvalidateRequest {
            target: Some(pb::invalidate_request::Target::Name("nope".into())),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let empty = client
        .invalidate(InvalidateRequest { target: None })
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn by_default_an_edit_is_served_within_the_one_second_change_check_interval() {
    let daemon = Setup::new().start();
    let mut client = daemon.client().await;
    assert_eq!(
        resolved(&mut client, "plain").await.value,
        b"plain-e2e-value"
    );
    let edited = crate::harness::SECRETS_YAML.replace("plain-e2e-value", "plain-e2e-edited1");
    std::fs::write(daemon.setup.secrets_file(), edited).unwrap();
    // Cache hits keep the old value until the interval runs out; the first check after
    // that sees the edit. The bound is generous, to not fail on a slow machine.
    let edited = crate::harness::wait_until_async(
        Duration::from_secs(20),
        async || {
            let secret = resolved(&mut client, "plain").await;
            if secret.value == b"plain-e2e-edited1" {
                return Some(secret);
            }
            assert_eq!(secret.value, b"plain-e2e-value");
            None
        },
        || "the edit was not served 20 s after it was written".to_owned(),
    )
    .await;
    assert_eq!(edited.cache, CacheOutcome::Miss as i32);
}

#[tokio::test]
async fn with_change_check_interval_zero_an_edit_is_seen_by_the_next_resolve_despite_the_cache() {
    let mut setup = Setup::new();
    setup.change_check_interval = Some("0s");
    let daemon = setup.start();
    let mut client = daemon.client().await;
    assert_eq!(
        resolved(&mut client, "plain").await.value,
        b"plain-e2e-value"
    );
    assert_eq!(
        resolved(&mut client, "plain").await.cache,
        CacheOutcome::Hit as i32
    );
    // Rewrite in place (same inode), the way `echo > file` does.
    let edited = crate::harness::SECRETS_YAML.replace("plain-e2e-value", "plain-e2e-rotated");
    std::fs::write(daemon.setup.secrets_file(), edited).unwrap();
    let after = resolved(&mut client, "plain").await;
    assert_eq!(after.value, b"plain-e2e-rotated");
    assert_eq!(after.cache, CacheOutcome::Miss as i32);
    // Replace by rename, the way editors and Kubernetes secret volumes do.
    let staged = daemon.setup.dir.path().join("secrets.yaml.new");
    std::fs::write(
        &staged,
        crate::harness::SECRETS_YAML.replace("plain-e2e-value", "plain-e2e-renamed"),
    )
    .unwrap();
    std::fs::rename(&staged, daemon.setup.secrets_file()).unwrap();
    assert_eq!(
        resolved(&mut client, "plain").await.value,
        b"plain-e2e-renamed"
    );
    // A broken edit (an editor half-way through writing) is a temporary failure: a
    // value cached before it is served stale, with the reason (its position, never its
    // content); a definition with nothing cached gets the error.
    std::fs::write(daemon.setup.secrets_file(), "plain: [\"half-written-secret").unwrap();
    let mut stale = resolved(&mut client, "plain").await;
    assert!(stale.stale);
    assert_eq!(stale.cache, CacheOutcome::Stale as i32);
    assert_eq!(stale.value, b"plain-e2e-renamed");
    let reason = stale.stale_reason.take().unwrap_or_default();
    assert!(reason.contains("not valid YAML"), "{reason}");
    assert!(!reason.contains("half-written-secret"), "{reason}");
    let err = client.resolve(resolve_request("pem")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("not valid YAML"),
        "{}",
        err.message()
    );
    assert!(
        !err.message().contains("half-written-secret"),
        "{}",
        err.message()
    );
    // No pause needed: the good file differs in size from the broken one, so the very
    // next resolve sees a new signature.
    std::fs::write(daemon.setup.secrets_file(), crate::harness::SECRETS_YAML).unwrap();
    assert_eq!(
        resolved(&mut client, "plain").await.value,
        b"plain-e2e-value"
    );
}

#[tokio::test]
async fn health_and_reflection_answer() {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let daemon = Setup::new().start();
    let channel = client::channel(&daemon.unix_address()).await.unwrap();
    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: "vaultbridge.v1.Secrets".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        health.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    let response = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("expected a service list");
    };
    let services: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in ["vaultbridge.v1.Secrets", "grpc.health.v1.Health"] {
        assert!(services.iter().any(|s| s == expected), "{services:?}");
    }
}

/// A watcher learns of a secrets-file edit without reading: the state when it began,
/// then one event when the file changes (within its change_check_interval), and never
/// the value itself.
#[tokio::test]
async fn a_watcher_hears_of_a_file_edit_without_the_value() {
    use futures_util::StreamExt;
    use vaultbridge::proto::v1::{WatchEventKind, WatchRequest};
    let daemon = Setup::new().start();
    let mut client = daemon.client().await;
    let mut events = client
        .watch(WatchRequest {
            names: vec!["plain".into(), "missing-entry".into()],
        })
        .await
        .unwrap()
        .into_inner();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(30), events.next())
            .await
            .expect("an event within 30 s")
            .expect("the stream goes on")
            .expect("an event, not an error")
    };
    let first = next().await;
    assert_eq!(
        (first.name.as_str(), first.kind),
        ("plain", WatchEventKind::Current as i32)
    );
    let second = next().await;
    assert_eq!(
        (second.name.as_str(), second.kind),
        ("missing-entry", WatchEventKind::Error as i32)
    );
    assert!(
        second.message.contains("no entry `not-there`"),
        "{}",
        second.message
    );
    let edited = crate::harness::SECRETS_YAML.replace("plain-e2e-value", "plain-e2e-watched");
    std::fs::write(daemon.setup.secrets_file(), edited).unwrap();
    let changed = next().await;
    assert_eq!(
        (changed.name.as_str(), changed.kind),
        ("plain", WatchEventKind::Changed as i32)
    );
    assert!(changed.fetched_at.is_some());
    assert!(!format!("{changed:?}").contains("plain-e2e-watched"));
    assert_eq!(
        resolved(&mut client, "plain").await.value,
        b"plain-e2e-watched"
    );
}

#[tokio::test]
async fn a_watch_of_nothing_or_of_an_unknown_definition_is_refused() {
    use vaultbridge::proto::v1::WatchRequest;
    let daemon = Setup::new().start();
    let mut client = daemon.client().await;
    let empty = client
        .watch(WatchRequest { names: vec![] })
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    let unknown = client
        .watch(WatchRequest {
            names: vec!["plain".into(), "nope".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert!(
        unknown.message().contains("`nope`"),
        "{}",
        unknown.message()
    );
}
