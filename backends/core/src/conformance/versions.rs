//! Revisions, pinned version ids and version stages.

use super::fixture::{Fixture, Seed, Update};
use super::support::*;
use crate::{ErrorKind, SecretRef, VersionSelector};
use std::time::{Duration, Instant};

/// A change is served by the next fetch, whatever the backend: a backend that cannot
/// tell of changes (`revision()` is `None`) must not cache values itself, since the
/// TTL is then all the daemon has. A backend that reports a revision must keep it while
/// nothing changes (else no cache hit survives) and move it once the data changed,
/// without a fetch in between: the resolver reads it on cache hits. A backend may take
/// a bounded time to notice (the file backend takes its signature at most once per
/// `change_check_interval`), so the new revision is polled for, with a deadline.
pub async fn a_change_moves_a_reported_revision_and_none_stays_none(fixture: &dyn Fixture) {
    let backend = fixture
        .backend(&[("conf-rev", Seed::text("rev-value-one"))])
        .await;
    let before = backend.revision(Instant::now());
    assert_eq!(
        value(&backend, &SecretRef::new("conf-rev")).await,
        b"rev-value-one"
    );
    assert_eq!(
        backend.revision(Instant::now()),
        before,
        "the revision holds while nothing changes"
    );
    let updated = fixture
        .update("conf-rev", Seed::text("rev-value-two-longer"))
        .await;
    if updated == Update::Unsupported {
        assert!(
            before.is_none(),
            "the backend reports a revision ({before:?}); its fixture must implement \
             `Fixture::update` so that the suite can check the revision moves"
        );
        assert_eq!(
            value(&backend, &SecretRef::new("conf-rev")).await,
            b"rev-value-one"
        );
        assert_eq!(
            backend.revision(Instant::now()),
            None,
            "no revision stays no revision"
        );
        return;
    }
    let after = match before {
        None => {
            assert_eq!(
                backend.revision(Instant::now()),
                None,
                "no revision stays no revision"
            );
            None
        }
        Some(before) => {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match backend.revision(Instant::now()) {
                    Some(now) if now != before => break Some(now),
                    Some(_) => {}
                    None => panic!("the backend reported revision {before}, then none"),
                }
                assert!(
                    Instant::now() < deadline,
                    "the revision did not move within 30 s of a change"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    assert_eq!(
        value(&backend, &SecretRef::new("conf-rev")).await,
        b"rev-value-two-longer",
        "the next fetch serves the change"
    );
    assert_eq!(
        backend.revision(Instant::now()),
        after,
        "the new revision (or none) holds while nothing changes"
    );
}

/// Pinning a version by id, by what the backend declares. With `version_ids`: the
/// served version's id is reported, a pinned id serves that version after a newer one
/// was added (through `fetch` and `fetch_many`, and with a key), and an id the secret
/// does not have is a permanent not-found naming the version. Without: a pinned id is
/// refused as permanent invalid config, rather than silently serving the latest value.
pub async fn a_pinned_version_id_is_served_if_declared_else_refused(fixture: &dyn Fixture) {
    let backend = fixture
        .backend(&[("conf-pinned", version_seed("pinned-one"))])
        .await;
    let latest = SecretRef::new("conf-pinned").with_key("token");
    if !backend.capabilities().version_ids {
        let pinned = pin(&latest, VersionSelector::Id("1".repeat(32)));
        let err = error(&backend, &pinned).await;
        assert_permanent(&err, ErrorKind::InvalidConfig);
        let many = backend.fetch_many(&[latest.clone(), pinned.clone()]).await;
        assert_eq!(many.len(), 2);
        Expected::Value(b"pinned-one").check(&latest, &many[0]);
        Expected::Error(ErrorKind::InvalidConfig, "").check(&pinned, &many[1]);
        return;
    }
    let first = fetch(&backend, &latest).await;
    let first_id = first
        .version
        .clone()
        .expect("a backend with version ids reports the id of the version it serves");
    require_update(
        fixture
            .update("conf-pinned", version_seed("pinned-two"))
            .await,
    );
    let second = fetch(&backend, &latest).await;
    assert_eq!(
        second.value.expose(),
        b"pinned-two",
        "the newest version is current"
    );
    let second_id = second.version.clone().expect("the served version's id");
    assert_ne!(second_id, first_id, "a new value is a new version");

    let old = pin(&latest, VersionSelector::Id(first_id.clone()));
    let pinned = fetch(&backend, &old).await;
    assert_eq!(
        pinned.value.expose(),
        b"pinned-one",
        "the pinned version is served"
    );
    assert_eq!(pinned.version.as_deref(), Some(first_id.as_str()));
    let whole = pin(
        &SecretRef::new("conf-pinned"),
        VersionSelector::Id(first_id.clone()),
    );
    assert_eq!(
        value(&backend, &whole).await,
        Seed::map_as_json(&[("token".to_owned(), "pinned-one".to_owned())]).as_bytes(),
    );

    let missing_id = other_version_id(&first_id);
    assert!(missing_id != first_id && missing_id != second_id);
    let missing = pin(&latest, VersionSelector::Id(missing_id.clone()));
    let err = error(&backend, &missing).await;
    assert_permanent(&err, ErrorKind::NotFound);
    assert!(
        err.to_string().contains(&missing_id),
        "the message names the version: {err}"
    );
    assert_no_values(&err.to_string(), &["pinned-one", "pinned-two"]);

    let many = backend
        .fetch_many(&[old.clone(), latest.clone(), missing.clone()])
        .await;
    assert_eq!(many.len(), 3);
    Expected::Value(b"pinned-one").check(&old, &many[0]);
    Expected::Value(b"pinned-two").check(&latest, &many[1]);
    Expected::Error(ErrorKind::NotFound, &missing_id).check(&missing, &many[2]);
}

/// Selecting a version by stage, by what the backend declares. With `version_stages`:
/// after an update the current stage serves the new value and the previous stage the
/// replaced one (through `fetch` and `fetch_many`), and a stage no version carries is a
/// permanent not-found naming the stage. Without: a stage is refused as permanent
/// invalid config.
pub async fn a_version_stage_is_served_if_declared_else_refused(fixture: &dyn Fixture) {
    const MISSING_STAGE: &str = "CONFORMANCE-NO-SUCH-STAGE";
    let backend = fixture
        .backend(&[("conf-staged", version_seed("staged-one"))])
        .await;
    let latest = SecretRef::new("conf-staged").with_key("token");
    if !backend.capabilities().version_stages {
        let staged = pin(&latest, VersionSelector::Stage("PREVIOUS".to_owned()));
        let err = error(&backend, &staged).await;
        assert_permanent(&err, ErrorKind::InvalidConfig);
        let many = backend.fetch_many(&[staged.clone(), latest.clone()]).await;
        assert_eq!(many.len(), 2);
        Expected::Error(ErrorKind::InvalidConfig, "").check(&staged, &many[0]);
        Expected::Value(b"staged-one").check(&latest, &many[1]);
        return;
    }
    let stages = fixture.stages().expect(
        "the backend declares version stages; its fixture must name them in `Fixture::stages`",
    );
    let first_version = fetch(&backend, &latest).await.version;
    require_update(
        fixture
            .update("conf-staged", version_seed("staged-two"))
            .await,
    );

    let current = pin(&latest, VersionSelector::Stage(stages.current.to_owned()));
    let previous = pin(&latest, VersionSelector::Stage(stages.previous.to_owned()));
    assert_eq!(value(&backend, &current).await, b"staged-two");
    let old = fetch(&backend, &previous).await;
    assert_eq!(
        old.value.expose(),
        b"staged-one",
        "the previous stage is the replaced value"
    );
    if first_version.is_some() {
        assert_eq!(
            old.version, first_version,
            "the previous stage is the first version"
        );
    }

    let missing = pin(&latest, VersionSelector::Stage(MISSING_STAGE.to_owned()));
    let err = error(&backend, &missing).await;
    assert_permanent(&err, ErrorKind::NotFound);
    assert!(
        err.to_string().contains(MISSING_STAGE),
        "the message names the stage: {err}"
    );
    assert_no_values(&err.to_string(), &["staged-one", "staged-two"]);

    let many = backend
        .fetch_many(&[previous.clone(), missing.clone(), current.clone()])
        .await;
    assert_eq!(many.len(), 3);
    Expected::Value(b"staged-one").check(&previous, &many[0]);
    Expected::Error(ErrorKind::NotFound, MISSING_STAGE).check(&missing, &many[1]);
    Expected::Value(b"staged-two").check(&current, &many[2]);
}
