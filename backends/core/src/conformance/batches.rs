//! `fetch_many`: one answer per entry, in order, past `max_batch`.

use super::fixture::{Fixture, Seed};
use super::support::*;
use crate::{ErrorKind, SecretRef};

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
