//! The behaviour suite every backend runs, so that a reader who knows one backend knows
//! them all. A backend crate implements [`Fixture`] (how to seed secrets into a fresh
//! instance of the backend, how to change one while it runs, and, for a backend with
//! version stages, which labels a change moves) and calls
//! [`conformance_suite!`](crate::conformance_suite) from its tests; a new backend is
//! done when the suite passes.
//!
//! Cases read what the backend declares instead of special-casing types, as OpenDAL's
//! behaviour tests do: a backend that stores arbitrary bytes must return them unchanged,
//! a text-only backend awkward text; a backend with version ids or stages must serve a
//! pinned version, one without must refuse it; a backend that reports a
//! [`Backend::revision`] must move it when its data changes; a backend with a remote
//! service must answer with a temporary error when that service cannot be reached.
//! Every case asserts something on every backend: where a capability is absent, the
//! case checks the refusal or the absence instead.

use crate::{Backend, BackendError, ErrorKind, Fetched, SecretRef, VersionSelector};
use async_trait::async_trait;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A value to seed into a backend.
#[derive(Debug, Clone)]
pub enum Seed {
    /// A plain value (bytes; text backends only receive UTF-8).
    Value(Vec<u8>),
    /// A key/value secret: a native map where the backend has one, else a JSON object
    /// string.
    Map(Vec<(String, String)>),
}

impl Seed {
    pub fn text(text: &str) -> Self {
        Self::Value(text.as_bytes().to_vec())
    }

    pub fn map(pairs: &[(&str, &str)]) -> Self {
        Self::Map(
            pairs
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect(),
        )
    }

    /// The JSON object text a backend without native maps stores for [`Seed::Map`].
    pub fn map_as_json(pairs: &[(String, String)]) -> String {
        let object: serde_json::Map<String, serde_json::Value> = pairs
            .iter()
            .map(|(key, value)| (key.clone(), serde_json::Value::String(value.clone())))
            .collect();
        serde_json::Value::Object(object).to_string()
    }
}

/// Whether a fixture changed a secret; see [`Fixture::update`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    Applied,
    /// This fixture cannot change data once the backend is made.
    Unsupported,
}

/// The stage labels a backend with [`Capabilities::version_stages`] moves when a secret
/// gets a new value.
///
/// [`Capabilities::version_stages`]: crate::Capabilities::version_stages
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stages {
    /// On the version served when no version is pinned (AWS: `AWSCURRENT`).
    pub current: &'static str,
    /// On the version the newest one replaced (AWS: `AWSPREVIOUS`).
    pub previous: &'static str,
}

/// How to make an instance of the backend under test that holds given secrets, and how
/// to change them afterwards.
#[async_trait]
pub trait Fixture: Send + Sync {
    /// A backend holding exactly `secrets` (id, value), and nothing else the suite asks
    /// for.
    async fn backend(&self, secrets: &[(&str, Seed)]) -> Arc<dyn Backend>;

    /// Gives secret `id`, seeded by the last call to [`Fixture::backend`], the value
    /// `seed`, the way an operator would (an edit of the file, a new version through the
    /// service's API), while that backend keeps running. Where the backend has versions
    /// the old value must stay readable as the previous version.
    ///
    /// The default cannot, and says so. Then the revision case only checks that a
    /// backend without a revision keeps returning `None`, and the cases that need a
    /// second version or a change fail, asking for this method, when the backend
    /// declares versions or reports a revision: those cannot be checked without one.
    async fn update(&self, id: &str, seed: Seed) -> Update {
        let _ = (id, seed);
        Update::Unsupported
    }

    /// For backends with version stages: the labels a [`Fixture::update`] moves. The
    /// default, `None`, fails the stage case for such a backend.
    fn stages(&self) -> Option<Stages> {
        None
    }

    /// For backends with a remote service: another instance of the backend, configured
    /// as the one from the last [`Fixture::backend`] call but unable to reach its
    /// service (its endpoint refuses connections, see [`RefusingAddress`], or answers
    /// only with server errors), with retries and timeouts short enough for a test.
    /// The suite checks that every fetch then fails with a temporary
    /// [`ErrorKind::Unavailable`] error, so that the resolver may retry or serve a
    /// stale value, instead of a permanent one (or a not-found) that would drop it.
    ///
    /// The default, `None`, means "this backend has no service to lose", and is right
    /// only for backends that read local state: `env` (the process environment) and
    /// `file` (a file on disk; its temporary errors, for a file half-way through an
    /// edit, are not the loss of a service). Nothing
    /// in the suite can tell a remote backend from a local one, so a backend with a
    /// service that leaves this at `None` skips the case silently: every backend that
    /// talks to a service (AWS Secrets Manager, Azure Key Vault, ...) must implement it.
    async fn unreachable(&self) -> Option<Unreachable> {
        None
    }
}

/// An instance of a backend whose service cannot be reached; see
/// [`Fixture::unreachable`].
#[derive(Debug)]
pub struct Unreachable {
    pub backend: Arc<dyn Backend>,
    /// How the backend's error messages name the service it could not reach (AWS:
    /// `Secrets Manager`; Azure: the vault URL). A message must name the secret or
    /// the service, so that an operator knows what failed.
    pub service: String,
}

/// A loopback address that refuses connections, for [`Fixture::unreachable`]: a socket
/// bound to a port the kernel picked, held but never listening. Connecting to it fails
/// at once with `ECONNREFUSED`, and while it is held no other process can bind the
/// port (the socket does not set `SO_REUSEADDR`, without which Linux refuses a second
/// bind). The alternatives are racy or slow: a port picked by binding and dropping a
/// listener is free for any process to take, and a listener that never accepts lets
/// connections queue until a timeout ends them.
#[derive(Debug)]
pub struct RefusingAddress {
    /// Only held: dropping it frees the port.
    _socket: tokio::net::TcpSocket,
    address: SocketAddr,
}

impl RefusingAddress {
    pub fn bind() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
        socket
            .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .expect("bind a loopback port");
        let address = socket.local_addr().expect("the bound address");
        Self {
            _socket: socket,
            address,
        }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

const MAP_VALUES: [&str; 2] = ["u-conformance-value", "t-conformance-value"];

fn key_map() -> Seed {
    Seed::map(&[("user", MAP_VALUES[0]), ("token", MAP_VALUES[1])])
}

fn assert_no_values(message: &str, values: &[&str]) {
    for value in values {
        assert!(
            !message.contains(value),
            "an error message echoed a secret value: {message}"
        );
    }
}

pub async fn found(fixture: &dyn Fixture) {
    let backend = fixture
        .backend(&[("conf-alpha", Seed::text("alpha-value-1"))])
        .await;
    let fetched = backend
        .fetch(&SecretRef::new("conf-alpha"))
        .await
        .expect("a seeded secret is found");
    assert_eq!(fetched.value.expose(), b"alpha-value-1");
    assert!(
        !format!("{fetched:?}").contains("alpha-value-1"),
        "Debug of a fetched secret shows its value"
    );
}

pub async fn not_found(fixture: &dyn Fixture) {
    let backend = fixture
        .backend(&[("conf-present", Seed::text("present-value"))])
        .await;
    let err = backend
        .fetch(&SecretRef::new("conf-absent"))
        .await
        .expect_err("an unseeded secret is not found");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(!err.is_temporary(), "not found is permanent: {err}");
    assert!(
        err.to_string().contains("conf-absent"),
        "the message names the secret: {err}"
    );
    assert_no_values(&err.to_string(), &["present-value"]);
}

pub async fn key_found(fixture: &dyn Fixture) {
    let backend = fixture.backend(&[("conf-bundle", key_map())]).await;
    let fetched = backend
        .fetch(&SecretRef::new("conf-bundle").with_key("token"))
        .await
        .expect("a present key is found");
    assert_eq!(fetched.value.expose(), MAP_VALUES[1].as_bytes());
}

pub async fn key_missing(fixture: &dyn Fixture) {
    let backend = fixture.backend(&[("conf-bundle", key_map())]).await;
    let err = backend
        .fetch(&SecretRef::new("conf-bundle").with_key("tokn"))
        .await
        .expect_err("a missing key is an error");
    assert_eq!(err.kind(), ErrorKind::KeyNotFound, "{err}");
    let message = err.to_string();
    for expected in ["tokn", "user", "token"] {
        assert!(
            message.contains(expected),
            "the message names `{expected}`: {message}"
        );
    }
    assert_no_values(&message, &MAP_VALUES);
}

pub async fn value_not_a_map(fixture: &dyn Fixture) {
    let backend = fixture
        .backend(&[("conf-plain", Seed::text("plain-not-a-map-value"))])
        .await;
    let err = backend
        .fetch(&SecretRef::new("conf-plain").with_key("token"))
        .await
        .expect_err("a key cannot be picked from a plain value");
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
    assert!(err.to_string().contains("token"), "names the key: {err}");
    assert_no_values(&err.to_string(), &["plain-not-a-map-value"]);
}

/// Values come back byte for byte: arbitrary bytes where the backend stores bytes,
/// awkward text (control characters, quotes, `$`, `#`, CRLF, NBSP, emoji) otherwise.
pub async fn binary_safe_value(fixture: &dyn Fixture) {
    let capabilities = fixture.backend(&[]).await.capabilities();
    let value: Vec<u8> = if capabilities.binary {
        let first = if capabilities.nul_bytes { 0 } else { 1 };
        let mut bytes: Vec<u8> = (first..=255u8).collect();
        bytes.extend_from_slice(&[0xc3, 0x28, 0xff, 0xfe]);
        bytes
    } else {
        "l1\r\nl2\ttab \u{1}ctl \"dq\" 'sq' $HOME ${X} #hash a=b \\bs \u{a0}nbsp \u{1F510} :colon- end"
            .as_bytes()
            .to_vec()
    };
    let backend = fixture
        .backend(&[("conf-binary", Seed::Value(value.clone()))])
        .await;
    let fetched = backend
        .fetch(&SecretRef::new("conf-binary"))
        .await
        .expect("the value is served");
    assert_eq!(fetched.value.expose(), value.as_slice());
}

/// Trimming is the daemon's per-definition policy, so a backend must not trim.
pub async fn trailing_whitespace_kept(fixture: &dyn Fixture) {
    let value = "  padded-token \t\r\n";
    let backend = fixture.backend(&[("conf-padded", Seed::text(value))]).await;
    let fetched = backend
        .fetch(&SecretRef::new("conf-padded"))
        .await
        .expect("the value is served");
    assert_eq!(fetched.value.expose(), value.as_bytes());
}

/// `fetch_many` answers each entry with what `fetch` answers for it, in order: found
/// values, keys, the same secret asked twice or with different keys, and errors that
/// each name their own entry (two different absent secrets tell a reordering apart).
pub async fn fetch_many_answers_every_entry_in_order(fixture: &dyn Fixture) {
    let backend = fixture
        .backend(&[
            ("conf-many-a", Seed::text("many-a-value")),
            ("conf-many-b", Seed::text("many-b-value")),
            ("conf-many-map", key_map()),
        ])
        .await;
    let cases: Vec<(SecretRef, Expected<'_>)> = vec![
        (
            SecretRef::new("conf-many-b"),
            Expected::Value(b"many-b-value"),
        ),
        (
            SecretRef::new("conf-many-absent-one"),
            Expected::Error(ErrorKind::NotFound, "conf-many-absent-one"),
        ),
        (
            SecretRef::new("conf-many-map").with_key("token"),
            Expected::Value(MAP_VALUES[1].as_bytes()),
        ),
        (
            SecretRef::new("conf-many-a"),
            Expected::Value(b"many-a-value"),
        ),
        (
            SecretRef::new("conf-many-map").with_key("tokn"),
            Expected::Error(ErrorKind::KeyNotFound, "tokn"),
        ),
        (
            SecretRef::new("conf-many-map").with_key("user"),
            Expected::Value(MAP_VALUES[0].as_bytes()),
        ),
        (
            SecretRef::new("conf-many-absent-two"),
            Expected::Error(ErrorKind::NotFound, "conf-many-absent-two"),
        ),
        (
            SecretRef::new("conf-many-b"),
            Expected::Value(b"many-b-value"),
        ),
        (
            SecretRef::new("conf-many-a").with_key("token"),
            Expected::Error(ErrorKind::FailedPrecondition, "token"),
        ),
    ];
    let refs: Vec<SecretRef> = cases.iter().map(|(secret, _)| secret.clone()).collect();
    let results = backend.fetch_many(&refs).await;
    assert_eq!(results.len(), refs.len(), "one result per entry");
    for ((secret, expected), result) in cases.iter().zip(&results) {
        expected.check(secret, result);
        if let Err(err) = result {
            assert_no_values(
                &err.to_string(),
                &[MAP_VALUES[0], MAP_VALUES[1], "many-a-value", "many-b-value"],
            );
        }
    }
    assert!(
        backend.fetch_many(&[]).await.is_empty(),
        "no entries, no results"
    );
}

/// `max_batch` is how many secrets a backend can usefully take in one call, not a limit
/// on callers: the resolver hands a backend all of a batch's misses at once, so a
/// backend must split a longer `fetch_many` itself and still answer every entry in
/// order, including an absent one past the first `max_batch`.
pub async fn fetch_many_takes_more_than_max_batch(fixture: &dyn Fixture) {
    let max_batch = fixture.backend(&[]).await.max_batch();
    assert!(max_batch >= 1, "max_batch is at least 1, got {max_batch}");
    let count = max_batch + 2;
    let names: Vec<String> = (0..count).map(|i| format!("conf-batch-{i:03}")).collect();
    let values: Vec<String> = (0..count).map(|i| format!("batch-value-{i:03}")).collect();
    let seeds: Vec<(&str, Seed)> = names
        .iter()
        .zip(&values)
        .map(|(name, value)| (name.as_str(), Seed::text(value)))
        .collect();
    let backend = fixture.backend(&seeds).await;
    // Reversed, so that a backend answering in its own (sorted) order is caught.
    let mut cases: Vec<(SecretRef, Expected<'_>)> = names
        .iter()
        .zip(&values)
        .rev()
        .map(|(name, value)| (SecretRef::new(name), Expected::Value(value.as_bytes())))
        .collect();
    cases.insert(
        max_batch,
        (
            SecretRef::new("conf-batch-absent"),
            Expected::Error(ErrorKind::NotFound, "conf-batch-absent"),
        ),
    );
    let refs: Vec<SecretRef> = cases.iter().map(|(secret, _)| secret.clone()).collect();
    let results = backend.fetch_many(&refs).await;
    assert_eq!(results.len(), refs.len(), "one result per entry");
    for ((secret, expected), result) in cases.iter().zip(&results) {
        expected.check(secret, result);
    }
}

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
    let before = backend.revision();
    assert_eq!(
        value(&backend, &SecretRef::new("conf-rev")).await,
        b"rev-value-one"
    );
    assert_eq!(
        backend.revision(),
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
        assert_eq!(backend.revision(), None, "no revision stays no revision");
        return;
    }
    let after = match before {
        None => {
            assert_eq!(backend.revision(), None, "no revision stays no revision");
            None
        }
        Some(before) => {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match backend.revision() {
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
        backend.revision(),
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

/// What one entry of a batch must come back as.
#[derive(Debug)]
enum Expected<'a> {
    Value(&'a [u8]),
    /// An error of this kind whose message contains the text.
    Error(ErrorKind, &'a str),
}

impl Expected<'_> {
    fn check(&self, secret: &SecretRef, result: &Result<Fetched, BackendError>) {
        match (self, result) {
            (Self::Value(expected), Ok(fetched)) => assert!(
                fetched.value.expose() == *expected,
                "{secret:?} served the wrong value (expected {:?})",
                String::from_utf8_lossy(expected)
            ),
            (Self::Error(kind, named), Err(err)) => {
                assert_eq!(err.kind(), *kind, "{secret:?}: {err}");
                assert!(
                    err.to_string().contains(named),
                    "{secret:?}: the message names `{named}`: {err}"
                );
            }
            (Self::Value(_), Err(err)) => panic!("{secret:?} failed: {err}"),
            (Self::Error(kind, _), Ok(_)) => panic!("{secret:?} was served, expected {kind}"),
        }
    }
}

/// A key/value seed for the version cases: a key is picked from a pinned version too.
fn version_seed(token: &str) -> Seed {
    Seed::map(&[("token", token)])
}

fn pin(secret: &SecretRef, version: VersionSelector) -> SecretRef {
    SecretRef {
        version,
        ..secret.clone()
    }
}

fn require_update(update: Update) {
    assert_eq!(
        update,
        Update::Applied,
        "the backend declares versions; its fixture must implement `Fixture::update` \
         (a new version through the backend's API) so that the suite can pin the old one"
    );
}

/// An id in the same format as `id` (every letter and digit moved on within its class,
/// so hex stays hex and a UUID stays a UUID) that `id`'s secret does not have.
fn other_version_id(id: &str) -> String {
    let other: String = id
        .chars()
        .map(|c| match c {
            '9' => '0',
            'f' => 'a',
            'F' => 'A',
            'z' => 'g',
            'Z' => 'G',
            c if c.is_ascii_alphanumeric() => char::from(c as u8 + 1),
            c => c,
        })
        .collect();
    if other == id { format!("{id}0") } else { other }
}

async fn fetch(backend: &Arc<dyn Backend>, secret: &SecretRef) -> Fetched {
    backend
        .fetch(secret)
        .await
        .unwrap_or_else(|err| panic!("{secret:?} failed: {err}"))
}

async fn value(backend: &Arc<dyn Backend>, secret: &SecretRef) -> Vec<u8> {
    fetch(backend, secret).await.value.expose().to_vec()
}

async fn error(backend: &Arc<dyn Backend>, secret: &SecretRef) -> BackendError {
    match backend.fetch(secret).await {
        Ok(_) => panic!("{secret:?} was served; expected an error"),
        Err(err) => err,
    }
}

fn assert_permanent(err: &BackendError, kind: ErrorKind) {
    assert_eq!(err.kind(), kind, "{err}");
    assert!(!err.is_temporary(), "{kind} must be permanent: {err}");
}

/// Generates one `#[tokio::test]` per conformance case in a `conformance` module.
/// `$fixture` is an expression evaluated afresh in every test. The calling crate needs
/// `tokio` (with `macros` and `rt`) as a dev-dependency.
#[macro_export]
macro_rules! conformance_suite {
    ($fixture:expr) => {
        $crate::conformance_suite!(conformance, $fixture);
    };
    ($module:ident, $fixture:expr) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $crate::conformance_suite!(@case $fixture; found, not_found, key_found,
                key_missing, value_not_a_map, binary_safe_value, trailing_whitespace_kept,
                fetch_many_answers_every_entry_in_order, fetch_many_takes_more_than_max_batch,
                a_change_moves_a_reported_revision_and_none_stays_none,
                a_pinned_version_id_is_served_if_declared_else_refused,
                a_version_stage_is_served_if_declared_else_refused,
                not_found_key_missing_and_invalid_config_are_permanent,
                an_unreachable_service_is_unavailable_and_temporary);
        }
    };
    (@case $fixture:expr; $($case:ident),+) => {
        $(
            #[tokio::test]
            async fn $case() {
                let fixture = $fixture;
                $crate::conformance::$case(&fixture).await;
            }
        )+
    };
}

#[cfg(test)]
mod tests {
    use super::RefusingAddress;

    #[test]
    fn a_refusing_address_refuses_and_keeps_its_port() {
        let refusing = RefusingAddress::bind();
        let err = std::net::TcpStream::connect(refusing.address())
            .expect_err("nothing listens on a refusing address");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
        // std's listener sets SO_REUSEADDR, as most servers do: still refused.
        assert!(
            std::net::TcpListener::bind(refusing.address()).is_err(),
            "another socket took the held port"
        );
    }
}
