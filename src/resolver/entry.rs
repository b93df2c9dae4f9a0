//! What the resolver and its state share: a definition bound to its backend, and a
//! value as cached.

use crate::config::{CachePolicy, FallbackOn};
use crate::metrics::BackendMeter;
use hyper::header::HeaderValue;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};
use vaultbridge_backend_core::{Backend, SecretRef, SecretValue};

/// A configured definition, bound to its backend instances.
#[derive(Debug)]
pub(crate) struct Definition {
    pub name: Arc<str>,
    pub sources: Sources,
    /// Which failures of a source let the next one answer.
    pub fallback_on: FallbackOn,
    pub policy: CachePolicy,
    pub trim: bool,
    pub description: String,
    /// Its resolve counters (shared by all definitions unless `per_definition`).
    pub meter: crate::metrics::DefinitionMeter,
    /// The value the cache holds for it, where a hit reads it first; see [`HotSlot`].
    pub hot: HotSlot,
}

/// A definition's cached value, kept beside the definition so that a cache hit costs
/// one atomic load, where the cache's own read (hashing, the expiry clock, recording
/// the read for its eviction policy) cost about 1,000 instructions.
///
/// It mirrors the cache: set when a value enters it, emptied when it leaves (expiry,
/// eviction, invalidation; `State` sees to that), filled from it on a read that found
/// the slot empty. Hits read here only while the cache is below `max_entries`; the
/// reads the cache does not see would only matter to which entry it evicts.
#[derive(Default)]
pub(crate) struct HotSlot(arc_swap::ArcSwapOption<CachedSecret>);

impl std::fmt::Debug for HotSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HotSlot")
    }
}

impl HotSlot {
    pub(super) fn load(&self) -> Option<Arc<CachedSecret>> {
        self.0.load_full()
    }

    pub(super) fn set(&self, secret: Arc<CachedSecret>) {
        self.0.store(Some(secret));
    }

    /// Puts `secret` in the slot if it is empty; whether it did.
    pub(super) fn fill(&self, secret: &Arc<CachedSecret>) -> bool {
        let previous = self
            .0
            .compare_and_swap(&None::<Arc<CachedSecret>>, Some(Arc::clone(secret)));
        previous.is_none()
    }

    /// Empties the slot if it holds `secret` (and not a newer value).
    pub(super) fn clear_if(&self, secret: &Arc<CachedSecret>) {
        let held = Some(Arc::clone(secret));
        self.0.compare_and_swap(&held, None);
    }

    pub(super) fn clear(&self) {
        self.0.store(None);
    }
}

/// One place a definition's value may be read.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    /// Shared by every definition of the backend.
    pub backend_name: Arc<str>,
    pub backend: Arc<dyn Backend>,
    pub secret: SecretRef,
    /// The backend's counters, where a fallback from it is counted.
    pub meter: BackendMeter,
}

/// A definition's sources in order: never empty, so the first needs no check.
#[derive(Debug, Clone)]
pub(crate) struct Sources {
    first: Source,
    rest: Box<[Source]>,
}

impl Sources {
    pub(crate) fn new(first: Source, rest: Vec<Source>) -> Self {
        Self {
            first,
            rest: rest.into_boxed_slice(),
        }
    }

    /// A definition with one backend.
    #[cfg(test)]
    pub(crate) fn one(source: Source) -> Self {
        Self::new(source, Vec::new())
    }

    pub(crate) fn first(&self) -> &Source {
        &self.first
    }

    /// The source at `index` (0: the first); the first for an index out of range,
    /// which no caller passes: indices come from this list.
    pub(crate) fn get(&self, index: usize) -> &Source {
        index
            .checked_sub(1)
            .and_then(|rest| self.rest.get(rest))
            .unwrap_or(&self.first)
    }

    pub(crate) fn len(&self) -> usize {
        self.rest.len() + 1
    }

    /// More than one source: fetched one after the other, never in a batch.
    pub(crate) fn several(&self) -> bool {
        !self.rest.is_empty()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Source> {
        std::iter::once(&self.first).chain(self.rest.iter())
    }
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
    /// Whether the value is UTF-8 text, checked once when it is cached.
    pub is_text: bool,
    /// `fetched_at` as the HTTP face's header, rendered by the first answer that needs
    /// it: the time never changes, and formatting it on every hit was measurable.
    /// Boxed, so that a value never served over HTTP pays 16 bytes, not 48. (`None`
    /// for a time RFC 3339 cannot write, before 1970 or after 9999.)
    pub fetched_at_header: OnceLock<Option<Box<HeaderValue>>>,
    /// What the backend said about the secret (never secret material).
    pub metadata: BTreeMap<String, String>,
    /// When it was fetched, on the monotonic clock: ages are measured from here.
    pub(super) fetched: Instant,
    /// Which of the definition's sources it came from (0: the first).
    pub source: usize,
    /// The source's revision when its fetch started; see [`Backend::revision`].
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
        self.age_at(Instant::now())
    }

    /// The age at `now`, a clock reading the caller has already taken.
    pub(crate) fn age_at(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.fetched)
    }
}
