//! The `cache` section: how long resolved values are kept and how many, what is served
//! while a backend fails, and how each backend is protected from the daemon itself.

use crate::protect::{Protection, ProtectionOverrides, RawProtection};
use serde::Deserialize;
use std::time::Duration;
use vaultbridge_backend_core::config::{Checker, Location, Section, Text};

pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(300);
pub(crate) const DEFAULT_MAX_ENTRIES: u64 = 10_000;
pub(crate) const DEFAULT_MAX_STALE: Duration = Duration::from_secs(3600);
pub(crate) const DEFAULT_REFRESH_AHEAD: Option<RefreshAhead> = Some(RefreshAhead(80));
pub(crate) const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(5);

/// How a definition's values are cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CachePolicy {
    pub ttl: Duration,
    /// How long past its TTL a value may still be served while the backend fails
    /// temporarily. Zero: never.
    pub max_stale: Duration,
    /// When, as a share of the TTL, a value that is being read is refreshed in the
    /// background. `None`: never; the first read after the TTL waits.
    pub refresh_ahead: Option<RefreshAhead>,
    /// How long a not-found answer is remembered. Zero: not at all.
    pub negative_ttl: Duration,
}

/// A share of the TTL, in percent (1 to 99).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RefreshAhead(pub u8);

impl CachePolicy {
    /// The TTL alone: no stale serving, no refresh ahead, no negative caching.
    #[cfg(test)]
    pub(crate) fn ttl_only(ttl: Duration) -> Self {
        Self {
            ttl,
            max_stale: Duration::ZERO,
            refresh_ahead: None,
            negative_ttl: Duration::ZERO,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CacheConfig {
    pub ttl: Duration,
    pub max_entries: u64,
    /// Resolve every definition at start, before reporting SERVING.
    pub warm_up: bool,
    pub max_stale: Duration,
    pub refresh_ahead: Option<RefreshAhead>,
    pub negative_ttl: Duration,
    /// Every backend's, unless the backend sets its own.
    pub protection: Protection,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCache {
    ttl: Option<Text>,
    max_entries: Option<Text>,
    warm_up: Option<Text>,
    max_stale: Option<Text>,
    refresh_ahead: Option<Text>,
    negative_ttl: Option<Text>,
    max_in_flight: Option<Text>,
    breaker_failures: Option<Text>,
    breaker_cooldown: Option<Text>,
    breaker_max_cooldown: Option<Text>,
}

pub(super) fn check(raw: Option<&RawCache>, checker: &mut Checker<'_>) -> CacheConfig {
    let mut cache = CacheConfig {
        ttl: DEFAULT_TTL,
        max_entries: DEFAULT_MAX_ENTRIES,
        warm_up: false,
        max_stale: DEFAULT_MAX_STALE,
        refresh_ahead: DEFAULT_REFRESH_AHEAD,
        negative_ttl: DEFAULT_NEGATIVE_TTL,
        protection: Protection::DEFAULT,
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
            _ => section.expected(
                value,
                "max_entries",
                "a whole number of entries, at least 1",
            ),
        }
    }
    if let Some(value) = &raw.warm_up
        && let Some(warm_up) = section.boolean(value, "warm_up")
    {
        cache.warm_up = warm_up;
    }
    if let Some(value) = &raw.max_stale
        && let Some(max_stale) = section.duration(value, "max_stale")
    {
        cache.max_stale = max_stale;
    }
    if let Some(value) = &raw.refresh_ahead
        && let Some(refresh_ahead) = refresh_ahead(value, "refresh_ahead", &mut section)
    {
        cache.refresh_ahead = refresh_ahead;
    }
    if let Some(value) = &raw.negative_ttl
        && let Some(negative_ttl) = section.duration(value, "negative_ttl")
    {
        cache.negative_ttl = negative_ttl;
    }
    let protection = RawProtection {
        max_in_flight: raw.max_in_flight.clone(),
        breaker_failures: raw.breaker_failures.clone(),
        breaker_cooldown: raw.breaker_cooldown.clone(),
        breaker_max_cooldown: raw.breaker_max_cooldown.clone(),
    };
    cache.protection = ProtectionOverrides::check(&protection, &mut section).over(cache.protection);
    if cache.protection.breaker_max_cooldown < cache.protection.breaker_cooldown
        && raw.breaker_max_cooldown.is_none()
        && let Some(value) = raw.breaker_cooldown.as_ref()
    {
        section.problem(
            value,
            "breaker_cooldown",
            "the first cool-down cannot be longer than `breaker_max_cooldown`",
        );
    }
    cache
}

/// `80%` (of the TTL), or `off`. `Some(None)`: off.
pub(super) fn refresh_ahead(
    value: &Text,
    field: &str,
    section: &mut Section<'_, '_>,
) -> Option<Option<RefreshAhead>> {
    let text = section.text(value, field)?;
    let trimmed = text.trim();
    if trimmed == "off" {
        return Some(None);
    }
    match trimmed.strip_suffix('%').map(|n| n.trim().parse::<u8>()) {
        Some(Ok(share @ 1..=99)) => Some(Some(RefreshAhead(share))),
        _ => {
            section.expected(value, field, "a share of the TTL from `1%` to `99%` (when a value being read is refreshed in the background), or `off`");
            None
        }
    }
}
