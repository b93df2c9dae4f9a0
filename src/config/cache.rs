//! The `cache` section: how long resolved values are kept, and how many.

use serde::Deserialize;
use std::time::Duration;
use vaultbridge_backend_core::config::{Checker, Location, Text};

pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(300);
pub(crate) const DEFAULT_MAX_ENTRIES: u64 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CacheConfig {
    pub ttl: Duration,
    pub max_entries: u64,
    /// Resolve every definition at start, before reporting SERVING.
    pub warm_up: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCache {
    ttl: Option<Text>,
    max_entries: Option<Text>,
    warm_up: Option<Text>,
}

pub(super) fn check(raw: Option<&RawCache>, checker: &mut Checker<'_>) -> CacheConfig {
    let mut cache = CacheConfig {
        ttl: DEFAULT_TTL,
        max_entries: DEFAULT_MAX_ENTRIES,
        warm_up: false,
    };
    let Some(raw) = raw else { return cache };
    let mut section = checker.section("cache", Location::START);
    if let Some(value) = &raw.ttl
        && let Some(ttl) = section.duration(value, "ttl")
    {
        cache.ttl = ttl;
    }
    if let Some(value) = &raw.max_entries
        && let Some(text) = section.text(value, "max_entries")
    {
        match text.trim().replace('_', "").parse::<u64>() {
            Ok(max) if max > 0 => cache.max_entries = max,
            _ => section.problem(
                value,
                "max_entries",
                format!("expected a whole number of entries, at least 1, got `{text}`"),
            ),
        }
    }
    if let Some(value) = &raw.warm_up
        && let Some(warm_up) = section.boolean(value, "warm_up")
    {
        cache.warm_up = warm_up;
    }
    cache
}
