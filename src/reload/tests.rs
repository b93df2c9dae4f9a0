//! Which backends and cached values a reload keeps, and which changes it refuses or
//! leaves for a restart.

use super::diff;
use crate::config::{Config, ProcessVars};
use crate::registry;
use crate::resolver::{CacheOutcome, Generation};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// `text`, with a listener unless it has a `server` section of its own.
fn parse(text: &str, dir: &Path) -> Config {
    let text = if text.contains("server:") {
        text.to_owned()
    } else {
        format!("server:\n  unix_socket: t.sock\n{text}")
    };
    Config::parse(&text, "test.yaml", dir, &ProcessVars).unwrap()
}

fn secrets_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets.yaml");
    std::fs::write(&secrets, "one: \"1\"\ntwo: \"2\"\nthree: \"3\"\n").unwrap();
    std::fs::write(dir.path().join("other.yaml"), "one: \"other-1\"\n").unwrap();
    dir
}

const BEFORE: &str = r#"
backends:
  same: {type: file, path: secrets.yaml}
  tuned: {type: file, path: secrets.yaml}
  moved: {type: file, path: secrets.yaml}
  gone: {type: env}
definitions:
  unchanged: {backend: same, secret: one}
  described: {backend: same, secret: one, description: before}
  new-secret: {backend: same, secret: two}
  new-ttl: {backend: same, secret: three}
  on-tuned: {backend: tuned, secret: one}
  on-moved: {backend: moved, secret: one}
  removed: {backend: same, secret: two}
  two-sources: {sources: [{backend: same, secret: one}, {backend: tuned, secret: two}]}
  sources-swapped: {sources: [{backend: same, secret: one}, {backend: tuned, secret: one}]}
  second-source-changed: {sources: [{backend: same, secret: one}, {backend: tuned, secret: two}]}
"#;

// Written elsewhere in the file (blank lines, comments, another order of sections),
// which must not count as a change.
const AFTER: &str = r#"
# reloaded
definitions:
  unchanged: {backend: same, secret: one}
  described: {backend: same, secret: one, description: after}
  new-secret: {backend: same, secret: three}
  new-ttl: {backend: same, secret: three, ttl: 1m}
  on-tuned: {backend: tuned, secret: one}
  on-moved: {backend: moved, secret: one}
  added: {backend: same, secret: two}
  two-sources: {sources: [{backend: same, secret: one}, {backend: tuned, secret: two}]}
  sources-swapped: {sources: [{backend: tuned, secret: one}, {backend: same, secret: one}]}
  second-source-changed: {sources: [{backend: same, secret: one}, {backend: tuned, secret: three}]}

backends:

  same: {type: file, path: secrets.yaml}
  tuned: {type: file, path: secrets.yaml, breaker_failures: 9}
  moved: {type: file, path: other.yaml}
  fresh: {type: env}
"#;

#[test]
fn backends_written_the_same_are_kept_wherever_they_are_written() {
    let dir = secrets_dir();
    let plan = diff::backends(
        &parse(BEFORE, dir.path()).backends,
        &parse(AFTER, dir.path()).backends,
    );
    assert_eq!(
        plan.kept.into_iter().collect::<Vec<_>>(),
        ["same", "tuned"],
        "a change of protection settings keeps the instance"
    );
    assert_eq!(plan.build, ["fresh", "moved"]);
    assert_eq!(plan.removed, ["gone"]);
}

#[test]
fn a_backend_whose_type_changed_is_rebuilt() {
    let dir = secrets_dir();
    let before = parse("backends:\n  b: {type: env, prefix: X_}\n", dir.path());
    let after = parse(
        "backends:\n  b: {type: env, prefix: Y_}\n  c: {type: env}\n",
        dir.path(),
    );
    let plan = diff::backends(&before.backends, &after.backends);
    assert!(plan.kept.is_empty());
    assert_eq!(plan.build, ["b", "c"]);
}

#[tokio::test]
async fn only_definitions_whose_source_is_unchanged_keep_their_cached_values() {
    let dir = secrets_dir();
    let before = parse(BEFORE, dir.path());
    let after = parse(AFTER, dir.path());
    let built = registry::build_all(&before.backends).await.unwrap();
    let first = Generation::first(&before, &built, None).unwrap();
    for name in first.resolver.definitions() {
        first.resolver.resolve(&name.name).await.unwrap();
    }

    let plan = diff::backends(&before.backends, &after.backends);
    let mut next_built: BTreeMap<String, Arc<dyn vaultbridge_backend_core::Backend>> =
        BTreeMap::new();
    for name in &plan.kept {
        next_built.insert(name.clone(), first.backends[name].raw.clone());
    }
    for name in &plan.build {
        let instance = after.backends[name].settings.build().await.unwrap();
        next_built.insert(name.clone(), instance);
    }
    let (next, changes) = first
        .next(&after, &next_built, &plan.kept, None)
        .await
        .unwrap();
    assert_eq!(changes.added, ["added"]);
    assert_eq!(changes.removed, ["removed"]);
    assert_eq!(
        changes.changed,
        [
            "new-secret",
            "new-ttl",
            "on-moved",
            "second-source-changed",
            "sources-swapped"
        ],
        "a definition with sources changes when any source or their order does"
    );
    assert_eq!(
        changes.kept,
        ["described", "on-tuned", "two-sources", "unchanged"]
    );
    assert!(
        Arc::ptr_eq(
            &first.backends["same"].protected,
            &next.backends["same"].protected
        ),
        "an unchanged backend keeps its protection, breaker state and all"
    );
    assert!(
        Arc::ptr_eq(&first.backends["tuned"].raw, &next.backends["tuned"].raw)
            && !Arc::ptr_eq(
                &first.backends["tuned"].protected,
                &next.backends["tuned"].protected
            ),
        "new breaker settings wrap the kept instance anew"
    );

    for name in &changes.kept {
        let resolved = next.resolver.resolve(name).await.unwrap();
        assert_eq!(resolved.cache, CacheOutcome::Hit, "{name}");
    }
    for name in changes.changed.iter().chain(&changes.added) {
        let resolved = next.resolver.resolve(name).await.unwrap();
        assert_eq!(resolved.cache, CacheOutcome::Miss, "{name}");
    }
    let value = |resolved: crate::resolver::Resolved| resolved.secret.value.expose().to_vec();
    assert_eq!(
        value(next.resolver.resolve("new-secret").await.unwrap()),
        b"3"
    );
    assert_eq!(
        value(next.resolver.resolve("on-moved").await.unwrap()),
        b"other-1"
    );
    assert!(next.resolver.resolve("removed").await.is_err());
    // The previous generation still answers calls that started on it.
    assert_eq!(
        value(first.resolver.resolve("new-secret").await.unwrap()),
        b"2"
    );
}

#[test]
fn listener_changes_are_reported_as_needing_a_restart() {
    let dir = secrets_dir();
    let before = parse(
        "server:\n  unix_socket: a.sock\n  max_connections: 10\n  rate_limit: {per_second: 5}\n",
        dir.path(),
    );
    let after = parse(
        "server:\n  unix_socket: b.sock\n  tcp: 127.0.0.1:9\n  max_connections: 11\n  max_connections_per_peer: 3\n  rate_limit: {per_second: 6}\n",
        dir.path(),
    );
    let warnings = diff::needs_restart(&before, &after);
    let fields: Vec<&str> = warnings
        .iter()
        .map(|warning| warning.split('`').nth(1).unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "server.unix_socket",
            "server.tcp",
            "server.max_connections",
            "server.max_connections_per_peer"
        ],
        "the rate limit is applied, not reported"
    );
    assert!(warnings[0].starts_with("test.yaml: `server.unix_socket` changed;"));
    assert!(diff::needs_restart(&before, &before).is_empty());
}

#[test]
fn access_rules_may_not_leave_a_reachable_listener_unauthenticated() {
    let dir = secrets_dir();
    std::fs::write(dir.path().join("token"), "t0ken-for-the-test\n").unwrap();
    let running = parse(
        "server:\n  tcp: 0.0.0.0:9\nclients:\n  a:\n    tokens: [{file: token}]\n",
        dir.path(),
    );
    let without_tokens = parse(
        "server:\n  tcp: 127.0.0.1:9\nclients:\n  a:\n    uids: [1]\n",
        dir.path(),
    );
    let problem = diff::unauthenticated_exposure(&running, &without_tokens).unwrap();
    assert!(
        problem.contains("`0.0.0.0:9`, which other hosts reach"),
        "{problem}"
    );
    assert!(diff::unauthenticated_exposure(&running, &running).is_none());
    assert!(diff::unauthenticated_exposure(&without_tokens, &without_tokens).is_none());
}
