//! Which errors are permanent and which temporary.

use super::fixture::{Fixture, Seed, Unreachable};
use super::support::*;
use crate::{BackendError, ErrorKind, SecretRef, VersionSelector};
use std::time::Duration;

/// Retries, serve-stale and circuit breaking read the temporary flag: an error that
/// describes what is stored or asked for cannot go away by trying again, so it must be
/// permanent, or the daemon would serve a stale value for a deleted secret or a typo.
/// A missing secret, version or key, a value that is not a map, and a version selector
/// the backend does not have (invalid config) are each checked through `fetch` and
/// through `fetch_many`, which must keep the flag.
pub async fn not_found_key_missing_and_invalid_config_are_permanent(fixture: &dyn Fixture) {
    let backend = fixture
        .backend(&[
            ("conf-perm-map", key_map()),
            ("conf-perm-plain", Seed::text("perm-plain-value")),
        ])
        .await;
    let capabilities = backend.capabilities();
    let mut cases = vec![
        (SecretRef::new("conf-perm-absent"), ErrorKind::NotFound),
        (
            SecretRef::new("conf-perm-map").with_key("tokn"),
            ErrorKind::KeyNotFound,
        ),
        (
            SecretRef::new("conf-perm-plain").with_key("token"),
            ErrorKind::FailedPrecondition,
        ),
    ];
    let served = fetch(&backend, &SecretRef::new("conf-perm-map"))
        .await
        .version;
    if capabilities.version_ids {
        let id = served.expect("a backend with version ids reports the id it serves");
        cases.push((
            pin(
                &SecretRef::new("conf-perm-map"),
                VersionSelector::Id(other_version_id(&id)),
            ),
            ErrorKind::NotFound,
        ));
    } else {
        cases.push((
            pin(
                &SecretRef::new("conf-perm-map"),
                VersionSelector::Id("1".repeat(32)),
            ),
            ErrorKind::InvalidConfig,
        ));
    }
    let stage = VersionSelector::Stage("CONFORMANCE-NO-SUCH-STAGE".to_owned());
    cases.push((
        pin(&SecretRef::new("conf-perm-map"), stage),
        if capabilities.version_stages {
            ErrorKind::NotFound
        } else {
            ErrorKind::InvalidConfig
        },
    ));
    for (secret, kind) in &cases {
        assert_permanent(&error(&backend, secret).await, *kind);
    }
    let refs: Vec<SecretRef> = cases.iter().map(|(secret, _)| secret.clone()).collect();
    let many = backend.fetch_many(&refs).await;
    assert_eq!(many.len(), refs.len(), "one result per entry");
    for ((secret, kind), result) in cases.iter().zip(&many) {
        match result {
            Ok(_) => panic!("fetch_many served {secret:?}, which fetch refused"),
            Err(err) => assert_permanent(err, *kind),
        }
    }
}

/// A backend that cannot reach its service answers every fetch with a temporary
/// [`ErrorKind::Unavailable`] error (the resolver may then retry, or serve a stale
/// value), through `fetch` and `fetch_many`: a present secret, a key of a map, a
/// pinned version where the backend has version ids, and an absent secret too, since
/// a backend that cannot ask cannot know it is absent. Each message names the secret
/// or the service, and no seeded value. The secrets are seeded first and served by a
/// reachable instance, so the failure can only be the service's absence. A backend
/// whose fixture has no [`Fixture::unreachable`] (no remote service) is checked for
/// that precondition only.
pub async fn an_unreachable_service_is_unavailable_and_temporary(fixture: &dyn Fixture) {
    const VALUES: [&str; 3] = ["down-value", MAP_VALUES[0], MAP_VALUES[1]];
    let reachable = fixture
        .backend(&[
            ("conf-down", Seed::text(VALUES[0])),
            ("conf-down-map", key_map()),
        ])
        .await;
    let mut secrets = vec![
        SecretRef::new("conf-down"),
        SecretRef::new("conf-down-map").with_key("token"),
        SecretRef::new("conf-down-absent"),
    ];
    let served = fetch(&reachable, &secrets[0]).await;
    assert_eq!(served.value.expose(), VALUES[0].as_bytes());
    assert_eq!(value(&reachable, &secrets[1]).await, VALUES[2].as_bytes());
    if reachable.capabilities().version_ids {
        let id = served
            .version
            .expect("a backend with version ids reports the id of the version it serves");
        secrets.push(pin(&secrets[0], VersionSelector::Id(id)));
    }
    let Some(Unreachable { backend, service }) = fixture.unreachable().await else {
        return;
    };
    let check = |via: &str, secret: &SecretRef, err: &BackendError| {
        assert_eq!(
            err.kind(),
            ErrorKind::Unavailable,
            "{via} {secret:?}: {err}"
        );
        assert!(
            err.is_temporary(),
            "{via} {secret:?}: an unreachable service must be a temporary error: {err}"
        );
        let message = err.to_string();
        assert!(
            message.contains(&secret.id) || message.contains(&service),
            "{via} {secret:?}: the message names the secret or `{service}`: {message}"
        );
        assert_no_values(&message, &VALUES);
    };
    // Generous: the fixture's timeouts end each call in seconds; this only turns a
    // hang into a failure.
    let deadline = Duration::from_secs(60);
    for secret in &secrets {
        let result = tokio::time::timeout(deadline, backend.fetch(secret))
            .await
            .unwrap_or_else(|_| panic!("{secret:?}: fetch hung on an unreachable service"));
        match result {
            Ok(_) => panic!("{secret:?} was served by a backend that cannot reach its service"),
            Err(err) => check("fetch", secret, &err),
        }
    }
    let many = tokio::time::timeout(deadline, backend.fetch_many(&secrets))
        .await
        .expect("fetch_many hung on an unreachable service");
    assert_eq!(many.len(), secrets.len(), "one result per entry");
    for (secret, result) in secrets.iter().zip(&many) {
        match result {
            Ok(_) => panic!("fetch_many served {secret:?} without its service"),
            Err(err) => check("fetch_many", secret, err),
        }
    }
}
