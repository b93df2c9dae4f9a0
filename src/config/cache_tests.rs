//! The `cache` section's knobs for outages and backend protection, and their overrides
//! per definition and per backend.

use super::tests::{MINIMAL, parse, problems};
use crate::config::{CachePolicy, RefreshAhead};
use std::time::Duration;

#[test]
fn cache_knobs_apply_to_every_definition_unless_it_sets_its_own() {
    let config = parse(&format!(
        "{MINIMAL}    max_in_flight: 4\n    breaker_failures: 0\ncache:\n  ttl: 1m\n  max_stale: 10m\n  refresh_ahead: 50%\n  negative_ttl: 0s\n  breaker_cooldown: 2s\n  breaker_max_cooldown: 30s\ndefinitions:\n  plain:\n    backend: e\n    secret: X\n  own:\n    backend: e\n    secret: Y\n    ttl: 10s\n    max_stale: 0s\n    refresh_ahead: off\n    negative_ttl: 1m\n"
    ))
    .expect("valid");
    let plain = config.policy_of(&config.definitions["plain"]);
    assert_eq!(
        plain,
        CachePolicy {
            ttl: Duration::from_secs(60),
            max_stale: Duration::from_secs(600),
            refresh_ahead: Some(RefreshAhead(50)),
            negative_ttl: Duration::ZERO,
        }
    );
    let own = config.policy_of(&config.definitions["own"]);
    assert_eq!(
        own,
        CachePolicy {
            ttl: Duration::from_secs(10),
            max_stale: Duration::ZERO,
            refresh_ahead: None,
            negative_ttl: Duration::from_secs(60),
        }
    );
    let protection = config.backends["e"]
        .protection
        .over(config.cache.protection);
    assert_eq!(protection.max_in_flight, 4);
    assert_eq!(protection.breaker_failures, 0);
    assert_eq!(protection.breaker_cooldown, Duration::from_secs(2));
    assert_eq!(protection.breaker_max_cooldown, Duration::from_secs(30));
}

#[test]
fn the_defaults_serve_stale_for_an_hour_and_refresh_at_four_fifths() {
    let config = parse(&format!(
        "{MINIMAL}definitions:\n  a:\n    backend: e\n    secret: X\n"
    ))
    .expect("valid");
    let policy = config.policy_of(&config.definitions["a"]);
    assert_eq!(policy.max_stale, Duration::from_secs(3600));
    assert_eq!(policy.refresh_ahead, Some(RefreshAhead(80)));
    assert_eq!(policy.negative_ttl, Duration::from_secs(5));
    assert_eq!(config.cache.protection, crate::protect::Protection::DEFAULT);
}

#[test]
fn bad_cache_knobs_are_located() {
    let text = problems(&format!(
        "{MINIMAL}    max_in_flight: 0\ncache:\n  max_stale: forever\n  refresh_ahead: 100%\n  breaker_failures: many\n  breaker_cooldown: 0s\n  breaker_max_cooldown: 2m\ndefinitions:\n  a:\n    backend: e\n    secret: X\n    refresh_ahead: 0.8\n"
    ))
    .join("\n");
    for expected in [
        "test.yaml:6:20: backends.e.max_in_flight: expected a number of calls from 1 to 10000, got `0`",
        "test.yaml:8:14: cache.max_stale: expected a duration",
        "test.yaml:9:18: cache.refresh_ahead: expected a share of the TTL from `1%` to `99%`",
        "cache.breaker_failures: expected a number of failures in a row",
        "cache.breaker_cooldown: a timeout must be longer than zero",
        "definitions.a.refresh_ahead: expected a share of the TTL",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
}
