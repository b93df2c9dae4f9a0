//! Definitions with `sources`: exactly one of the two forms, each source checked as a
//! single backend is, and `fallback_on`.

use super::tests::{MINIMAL, parse, problems};
use super::*;
use vaultbridge_backend_core::{SecretRef, VersionSelector};

/// Backends `e` (env) and `f` (file), for definitions appended after them.
fn backends() -> String {
    format!("{MINIMAL}  f:\n    type: file\n    path: s.yaml\n")
}

#[test]
fn sources_are_read_in_order_with_their_own_secret_key_and_version() {
    let config = parse(&format!(
        "{}definitions:\n  tok:\n    sources:\n      - backend: f\n        secret: jira\n        key: token\n      - backend: e\n        secret: JIRA_TOKEN\n    ttl: 1m\n",
        backends()
    ))
    .expect("valid");
    let tok = &config.definitions["tok"];
    let sources: Vec<(&str, &SecretRef)> = tok
        .sources
        .iter()
        .map(|source| (source.backend.as_str(), &source.secret))
        .collect();
    assert_eq!(
        sources,
        [
            ("f", &SecretRef::new("jira").with_key("token")),
            ("e", &SecretRef::new("JIRA_TOKEN")),
        ]
    );
    assert_eq!(tok.fallback_on, FallbackOn::DEFAULT);
    assert_eq!(tok.ttl, Some(Duration::from_secs(60)));
    // A definition with one backend is one source.
    let config = parse(&format!(
        "{MINIMAL}definitions:\n  one:\n    backend: e\n    secret: X\n"
    ))
    .expect("valid");
    assert_eq!(config.definitions["one"].sources.len(), 1);
    assert_eq!(config.definitions["one"].sources[0].backend, "e");
}

#[test]
fn a_definition_has_one_backend_or_sources_never_both_nor_neither() {
    let text = problems(&format!(
        "{}definitions:\n  both:\n    backend: e\n    secret: X\n    sources:\n      - backend: f\n        secret: x\n  neither:\n    description: nothing to read\n  empty:\n    sources: []\n  no-secret:\n    backend: e\n",
        backends()
    ))
    .join("\n");
    assert!(
        text.contains("test.yaml:11:14: definitions.both: set `backend` and `secret` (one source) or `sources` (several, tried in order), not both"),
        "{text}"
    );
    assert!(
        text.contains("test.yaml:17:18: definitions.neither: a definition needs `backend` and `secret`, or `sources`"),
        "{text}"
    );
    assert!(
        text.contains("test.yaml:19:14: definitions.empty.sources: `sources` is empty"),
        "{text}"
    );
    assert!(
        text.contains("test.yaml:21:14: definitions.no-secret: `secret` is missing"),
        "{text}"
    );
}

#[test]
fn each_source_is_checked_as_a_single_backend_is_and_all_problems_are_reported() {
    let text = problems(&format!(
        "{}definitions:\n  tok:\n    sources:\n      - backend: nope\n        secret: X\n      - backend: e\n        secret: A=B\n      - backend: e\n        secret: Y\n        version_stage: AWSPREVIOUS\n      - secret: Z\n      - backend: f\n        secret: ''\n        key: ''\n",
        backends()
    ))
    .join("\n");
    for expected in [
        "test.yaml:12:18: definitions.tok.sources[0].backend: no backend named `nope`; configured backends: e, f",
        "test.yaml:15:17: definitions.tok.sources[1].secret: `A=B` cannot be an environment variable name",
        "test.yaml:18:24: definitions.tok.sources[2].version_stage: `env` backends have no version stages",
        "test.yaml:19:17: definitions.tok.sources[3]: `backend` is missing",
        "definitions.tok.sources[4].secret: expected the secret's name or id, got an empty value",
        "definitions.tok.sources[4].key: expected a key name, got an empty value",
    ] {
        assert!(text.contains(expected), "no `{expected}` in:\n{text}");
    }
}

#[test]
fn a_source_listed_twice_is_refused() {
    let text = problems(&format!(
        "{MINIMAL}definitions:\n  tok:\n    sources:\n      - backend: e\n        secret: X\n      - backend: e\n        secret: X\n"
    ))
    .join("\n");
    assert!(
        text.contains(
            "definitions.tok.sources[1]: the same backend, secret, key and version as `sources[0]`"
        ),
        "{text}"
    );
    // The same secret at another version is another source.
    let config = parse(
        "server:\n  tcp: 127.0.0.1:1\nbackends:\n  aws:\n    type: aws_secrets_manager\n    region: eu-west-1\ndefinitions:\n  tok:\n    sources:\n      - backend: aws\n        secret: jira\n      - backend: aws\n        secret: jira\n        version_stage: AWSPREVIOUS\n",
    );
    if cfg!(feature = "aws") {
        let config = config.expect("valid");
        assert_eq!(
            config.definitions["tok"].sources[1].secret.version,
            VersionSelector::Stage("AWSPREVIOUS".into())
        );
    }
}

#[test]
fn fallback_on_names_the_failures_passed_over_and_never_a_denial() {
    let sources = "    sources:\n      - backend: e\n        secret: X\n      - backend: f\n        secret: x\n";
    let config = parse(&format!(
        "{}definitions:\n  tok:\n{sources}    fallback_on: [not_found, failed_precondition]\n",
        backends()
    ))
    .expect("valid");
    assert_eq!(
        config.definitions["tok"].fallback_on,
        FallbackOn {
            not_found: true,
            temporary: false,
            failed_precondition: true,
        }
    );
    let text = problems(&format!(
        "{}definitions:\n  denied:\n{sources}    fallback_on: [permission_denied]\n  typo:\n{sources}    fallback_on: [notfound]\n  none:\n{sources}    fallback_on: []\n  single:\n    backend: e\n    secret: X\n    fallback_on: [not_found]\n",
        backends()
    ))
    .join("\n");
    for expected in [
        "definitions.denied.fallback_on: a denial is never passed over",
        "definitions.typo.fallback_on: expected `not_found`, `temporary` or `failed_precondition`, got `notfound`",
        "definitions.none: `fallback_on` is empty",
        "definitions.single: `fallback_on` applies to `sources`",
    ] {
        assert!(text.contains(expected), "no `{expected}` in:\n{text}");
    }
}

#[test]
fn unknown_fields_in_a_source_are_refused() {
    let text = problems(&format!(
        "{MINIMAL}definitions:\n  tok:\n    sources:\n      - backend: e\n        secret: X\n        ttl: 1m\n"
    ))
    .join("\n");
    assert!(text.contains("unknown field `ttl`"), "{text}");
}
