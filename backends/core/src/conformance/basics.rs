//! Single fetches: values, keys, absences, awkward bytes.

use super::fixture::{Fixture, Seed};
use super::support::*;
use crate::{ErrorKind, SecretRef};

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
