//! What the cases share: seeds, expectations and assertions.

use super::fixture::{Seed, Update};
use crate::{Backend, BackendError, ErrorKind, Fetched, SecretRef, VersionSelector};
use std::sync::Arc;

pub(super) const MAP_VALUES: [&str; 2] = ["u-conformance-value", "t-conformance-value"];

pub(super) fn key_map() -> Seed {
    Seed::map(&[("user", MAP_VALUES[0]), ("token", MAP_VALUES[1])])
}

pub(super) fn assert_no_values(message: &str, values: &[&str]) {
    for value in values {
        assert!(
            !message.contains(value),
            "an error message echoed a secret value: {message}"
        );
    }
}

/// What one entry of a batch must come back as.
#[derive(Debug)]
pub(super) enum Expected<'a> {
    Value(&'a [u8]),
    /// An error of this kind whose message contains the text.
    Error(ErrorKind, &'a str),
}

impl Expected<'_> {
    pub(super) fn check(&self, secret: &SecretRef, result: &Result<Fetched, BackendError>) {
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
pub(super) fn version_seed(token: &str) -> Seed {
    Seed::map(&[("token", token)])
}

pub(super) fn pin(secret: &SecretRef, version: VersionSelector) -> SecretRef {
    SecretRef {
        version,
        ..secret.clone()
    }
}

pub(super) fn require_update(update: Update) {
    assert_eq!(
        update,
        Update::Applied,
        "the backend declares versions; its fixture must implement `Fixture::update` \
         (a new version through the backend's API) so that the suite can pin the old one"
    );
}

/// An id in the same format as `id` (every letter and digit moved on within its class,
/// so hex stays hex and a UUID stays a UUID) that `id`'s secret does not have.
pub(super) fn other_version_id(id: &str) -> String {
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

pub(super) async fn fetch(backend: &Arc<dyn Backend>, secret: &SecretRef) -> Fetched {
    backend
        .fetch(secret)
        .await
        .unwrap_or_else(|err| panic!("{secret:?} failed: {err}"))
}

pub(super) async fn value(backend: &Arc<dyn Backend>, secret: &SecretRef) -> Vec<u8> {
    fetch(backend, secret).await.value.expose().to_vec()
}

pub(super) async fn error(backend: &Arc<dyn Backend>, secret: &SecretRef) -> BackendError {
    match backend.fetch(secret).await {
        Ok(_) => panic!("{secret:?} was served; expected an error"),
        Err(err) => err,
    }
}

pub(super) fn assert_permanent(err: &BackendError, kind: ErrorKind) {
    assert_eq!(err.kind(), kind, "{err}");
    assert!(!err.is_temporary(), "{kind} must be permanent: {err}");
}
