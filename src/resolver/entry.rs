//! What the resolver and its state share: a definition bound to its backend, and a
//! value as cached.

use crate::config::CachePolicy;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::{Duration, Instant, SystemTime};
use vaultbridge_backend_core::{Backend, SecretRef, SecretValue};

/// A configured definition, bound to its backend instance.
#[derive(Debug)]
pub(crate) struct Definition {
    pub name: Arc<str>,
    /// Shared by every definition of the backend.
    pub backend_name: Arc<str>,
    pub backend: Arc<dyn Backend>,
    pub secret: SecretRef,
    pub policy: CachePolicy,
    pub trim: bool,
    pub description: String,
    /// Its resolve counters (shared by all definitions unless `per_definition`).
    pub meter: crate::metrics::DefinitionMeter,
}

/// Both maps are keyed by definition names, which come only from the config (a request
/// can look a name up but never insert one), so hash flooding is not a concern and the
/// default SipHash, two of them per cache hit, was measurable: about 330 instructions a
/// call under callgrind (scripts/profile).
pub(super) type NameHasher = foldhash::fast::RandomState;

/// A value as cached: already trimmed per the definition's policy.
#[derive(Debug)]
pub(crate) struct CachedSecret {
    pub value: SecretValue,
    pub version: Option<String>,
    pub fetched_at: SystemTime,
    pub trimmed: bool,
    /// What the backend said about the secret (never secret material).
    pub metadata: BTreeMap<String, String>,
    /// When it was fetched, on the monotonic clock: ages are measured from here.
    pub(super) fetched: Instant,
    /// The backend's revision when the fetch started; see [`Backend::revision`].
    pub(super) revision: Option<u64>,
    pub(super) policy: CachePolicy,
    /// Age after which a read asks for a background refresh (jittered per entry).
    pub(super) refresh_after: Option<Duration>,
    /// Set by the first read past `refresh_after`, so one refresh is asked for.
    pub(super) refresh_asked: AtomicBool,
    /// The resolver's settle count right after this value entered the cache (0 until
    /// then); see `State::settled`.
    pub(super) settled: AtomicU64,
}

impl CachedSecret {
    pub(crate) fn age(&self) -> Duration {
        self.fetched.elapsed()
    }
}
