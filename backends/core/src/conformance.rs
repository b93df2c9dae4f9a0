//! The behaviour suite every backend runs, so that a reader who knows one backend knows
//! them all. A backend crate implements [`Fixture`] (how to seed secrets into a fresh
//! instance of the backend) and calls [`conformance_suite!`](crate::conformance_suite)
//! from its tests; a new backend is done when the suite passes.
//!
//! Cases read the backend's [`Capabilities`] instead of special-casing types: a backend
//! that stores arbitrary bytes must return them unchanged; a text-only backend must
//! return awkward text unchanged.

use crate::{Backend, ErrorKind, SecretRef};
use async_trait::async_trait;
use std::sync::Arc;

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

/// How to make an instance of the backend under test that holds given secrets.
#[async_trait]
pub trait Fixture: Send + Sync {
    /// A backend holding exactly `secrets` (id, value), and nothing else the suite asks
    /// for.
    async fn backend(&self, secrets: &[(&str, Seed)]) -> Arc<dyn Backend>;
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
                key_missing, value_not_a_map, binary_safe_value, trailing_whitespace_kept);
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
