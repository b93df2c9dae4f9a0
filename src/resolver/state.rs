//! What the resolver keeps between calls: the cache, remembered not-founds, the backend
//! calls in flight (one per definition at a time), the definitions being served stale,
//! and the queue of background refreshes.

use super::entry::{CachedSecret, Definition, NameHasher};
use super::fallback::{Attempt, Fallbacks};
use crate::config::CachePolicy;
use crate::trim;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use moka::Expiry;
use moka::sync::Cache;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime};
use vaultbridge_backend_core::{Backend, BackendError, ErrorKind, Fetched};

pub(super) type FetchResult = Result<Arc<CachedSecret>, Failure>;

/// A backend read that gave no value: the error that decides the answer, and which of
/// the definition's sources gave it.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub error: Arc<BackendError>,
    pub source: usize,
}

impl Failure {
    pub(super) fn internal(message: &str) -> Self {
        Self {
            error: Arc::new(BackendError::internal(message)),
            source: 0,
        }
    }
}

/// One backend call for one definition, awaited by everyone who needs its result.
pub(super) type Flight = Shared<BoxFuture<'static, FetchResult>>;

/// How long background refreshes that fall due are collected before they are sent, so
/// that those of one batching backend go out as one call.
const REFRESH_WINDOW: Duration = Duration::from_millis(20);

/// A not-found answer, kept for its definition's `negative_ttl`.
#[derive(Debug)]
struct Missing {
    failure: Failure,
    ttl: Duration,
}

/// A value is kept past its TTL for as long as it may be served stale.
struct KeepForStale;

impl Expiry<Arc<str>, Arc<CachedSecret>> for KeepForStale {
    fn expire_after_create(
        &self,
        _name: &Arc<str>,
        secret: &Arc<CachedSecret>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(secret.policy.ttl.saturating_add(secret.policy.max_stale))
    }
}

struct MissingFor;

impl Expiry<Arc<str>, Arc<Missing>> for MissingFor {
    fn expire_after_create(
        &self,
        _name: &Arc<str>,
        missing: &Arc<Missing>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(missing.ttl)
    }
}

/// A backend read that found a new value or version of a definition (never the value).
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub name: Arc<str>,
    pub version: Option<String>,
    pub fetched_at: SystemTime,
}

/// Watchers that fall this far behind are told that everything they watch changed.
const CHANGES_BUFFER: usize = 1024;

/// The definitions a state serves, by name.
pub(super) type Definitions = Arc<HashMap<Arc<str>, Arc<Definition>, NameHasher>>;

pub(super) struct State {
    cache: Cache<Arc<str>, Arc<CachedSecret>, NameHasher>,
    /// `cache`'s capacity: below it, hits are read from the definitions' hot slots.
    max_entries: u64,
    definitions: Definitions,
    missing: Cache<Arc<str>, Arc<Missing>, NameHasher>,
    flights: Mutex<HashMap<Arc<str>, Flight, NameHasher>>,
    /// Definitions served stale since their backend last answered, so that an outage
    /// is logged once per definition, not once per request.
    stale: Mutex<HashSet<Arc<str>, NameHasher>>,
    /// Which source serves each definition with `sources`.
    fallbacks: Fallbacks,
    refresh_queue: Mutex<Vec<Arc<Definition>>>,
    /// This daemon's share (0 to a tenth) by which refresh points come early.
    refresh_jitter: f64,
    /// Keys the fingerprints below.
    jitter: std::collections::hash_map::RandomState,
    /// A keyed hash of each definition's last value and version, to tell a new one
    /// from the same one read again. Kept in memory only, never sent anywhere.
    fingerprints: Mutex<HashMap<Arc<str>, u64, NameHasher>>,
    changes: tokio::sync::broadcast::Sender<Change>,
    /// Counts values entering the cache. A caller reads it before its cache lookup; a
    /// flight it starts first takes a value settled after that count, since the lookup
    /// may have just missed it (a flight that ended between the lookup and the start
    /// of a new one would otherwise cost a second backend call).
    settled: AtomicU64,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("cached", &self.cache.entry_count())
            .field("missing", &self.missing.entry_count())
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl State {
    pub(super) fn new(max_entries: u64, definitions: Definitions) -> Self {
        let slots = Arc::clone(&definitions);
        Self {
            cache: Cache::builder()
                .max_capacity(max_entries)
                .expire_after(KeepForStale)
                // Called for every value that leaves the cache (expired, evicted,
                // invalidated, replaced): its hot slot lets it go too.
                .eviction_listener(move |name: Arc<Arc<str>>, secret, _cause| {
                    if let Some(definition) = slots.get(&**name) {
                        definition.hot.clear_if(&secret);
                    }
                })
                .build_with_hasher(NameHasher::default()),
            max_entries,
            definitions,
            missing: Cache::builder()
                .max_capacity(max_entries)
                .expire_after(MissingFor)
                .build_with_hasher(NameHasher::default()),
            flights: Mutex::default(),
            stale: Mutex::default(),
            fallbacks: Fallbacks::default(),
            refresh_queue: Mutex::default(),
            refresh_jitter: random_share(),
            jitter: std::collections::hash_map::RandomState::new(),
            fingerprints: Mutex::default(),
            changes: tokio::sync::broadcast::Sender::new(CHANGES_BUFFER),
            settled: AtomicU64::new(0),
        }
    }

    /// The state of a reloaded config: the cached values of the definitions `keeps`
    /// names carried over; the fingerprints of those that `exists` names, so that a
    /// changed definition's first read tells watchers whether its value changed; the
    /// change channel watchers listen on; and the settle count, which the carried
    /// values were stamped with. Calls in flight settle here, in the state they
    /// started in, so a changed definition never receives its old secret's value.
    pub(super) async fn successor(
        &self,
        max_entries: u64,
        definitions: Definitions,
        keeps: impl Fn(&str) -> bool,
        exists: impl Fn(&str) -> bool,
    ) -> Self {
        let next = Self {
            refresh_jitter: self.refresh_jitter,
            jitter: self.jitter.clone(),
            changes: self.changes.clone(),
            settled: AtomicU64::new(self.settled()),
            ..Self::new(max_entries, definitions)
        };
        for (name, secret) in &self.cache {
            if keeps(&name) {
                next.cache.insert(Arc::clone(&*name), secret);
            }
        }
        *lock(&next.fingerprints) = lock(&self.fingerprints)
            .iter()
            .filter(|(name, _)| exists(name))
            .map(|(name, fingerprint)| (name.clone(), *fingerprint))
            .collect();
        next
    }

    /// Read before a cache lookup; see the field.
    pub(super) fn settled(&self) -> u64 {
        self.settled.load(Ordering::SeqCst)
    }

    pub(super) fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Tells watchers when a read found a different value or version than the last.
    fn note_value(&self, definition: &Definition, secret: &CachedSecret) {
        let fingerprint = self
            .jitter
            .hash_one((secret.value.expose(), secret.version.as_deref()));
        let previous = lock(&self.fingerprints).insert(definition.name.clone(), fingerprint);
        if previous.is_some_and(|previous| previous != fingerprint) {
            tracing::info!(definition = %definition.name, version = ?secret.version, "a new value was read");
            // No receiver means nobody watches; nothing to do.
            let _ = self.changes.send(Change {
                name: definition.name.clone(),
                version: secret.version.clone(),
                fetched_at: secret.fetched_at,
            });
        }
    }

    /// Entries and value bytes in the cache, walked now.
    pub(super) fn usage(&self) -> (u64, u64) {
        self.cache
            .iter()
            .fold((0, 0), |(entries, bytes), (_, secret)| {
                (entries + 1, bytes + secret.value.expose().len() as u64)
            })
    }

    /// The definition's cached value: from its hot slot while the cache is below its
    /// capacity, else from the cache. (moka's synchronous cache: a read never waits, so
    /// a cache hit is no future at all.)
    pub(super) fn cached(&self, definition: &Definition) -> Option<Arc<CachedSecret>> {
        let roomy = self.cache.entry_count() < self.max_entries;
        if roomy && let Some(secret) = definition.hot.load() {
            return Some(secret);
        }
        let secret = self.cache.get(&definition.name)?;
        // A value that left the cache between the read and the fill would stay in the
        // slot with nothing to empty it: look again once it is in.
        if roomy && definition.hot.fill(&secret) && !self.cache.contains_key(&definition.name) {
            definition.hot.clear_if(&secret);
        }
        Some(secret)
    }

    pub(super) fn known_missing(&self, name: &Arc<str>) -> Option<Failure> {
        self.missing
            .get(name)
            .map(|missing| missing.failure.clone())
    }

    /// The flight of each definition: the one already under way, or a new one. With
    /// `batched`, the new flights of a batching backend go out as one `fetch_many`.
    /// `seen`: [`State::settled`] as read before the callers' cache lookups.
    pub(super) fn flights(
        self: &Arc<Self>,
        definitions: &[&Arc<Definition>],
        batched: bool,
        seen: u64,
    ) -> Vec<Flight> {
        let mut started: Vec<(Arc<Definition>, Answer)> = Vec::new();
        let flights = {
            let mut flights = lock(&self.flights);
            definitions
                .iter()
                .map(|definition| {
                    if let Some(flight) = flights.get(&definition.name) {
                        return flight.clone();
                    }
                    let (answer, wait) = tokio::sync::oneshot::channel();
                    let flight = async move {
                        wait.await.unwrap_or_else(|_| {
                            Err(Failure::internal("a backend call ended without an answer"))
                        })
                    }
                    .boxed()
                    .shared();
                    flights.insert(definition.name.clone(), flight.clone());
                    started.push((Arc::clone(definition), answer));
                    flight
                })
                .collect()
        };
        for group in group_by_backend(started, batched) {
            let state = Arc::clone(self);
            tokio::spawn(async move { state.fly(group, batched, seen).await });
        }
        flights
    }

    /// Makes the backend call of one group of new flights (one definition, or several
    /// of a batching backend), settles each result and answers its waiters. Runs as its
    /// own task, so that a caller going away cannot cancel a call others wait for.
    async fn fly(&self, group: Vec<(Arc<Definition>, Answer)>, batched: bool, seen: u64) {
        // A value settled after the callers looked is what a new call would give them.
        let mut pending = Vec::with_capacity(group.len());
        for (definition, answer) in group {
            match self.cache.get(&definition.name) {
                Some(secret) if secret.settled.load(Ordering::SeqCst) > seen => {
                    lock(&self.flights).remove(&definition.name);
                    let _ = answer.send(Ok(secret));
                }
                _ => pending.push((definition, answer)),
            }
        }
        let group = pending;
        let attempts: Vec<Attempt> = match group.as_slice() {
            [(definition, _)] if definition.sources.several() => {
                vec![self.fallbacks.fetch_in_order(definition).await]
            }
            [(definition, _)]
                if !(batched && definition.sources.first().backend.max_batch() > 1) =>
            {
                let source = definition.sources.first();
                let revision = source.backend.revision(Instant::now());
                vec![Attempt {
                    source: 0,
                    revision,
                    result: source.backend.fetch(&source.secret).await,
                }]
            }
            [(first, _), ..] => {
                // Only definitions with one source share a batch (see `group_by_backend`).
                let backend = &first.sources.first().backend;
                let revision = backend.revision(Instant::now());
                let secrets: Vec<_> = group
                    .iter()
                    .map(|(d, _)| d.sources.first().secret.clone())
                    .collect();
                let mut results = backend.fetch_many(&secrets).await.into_iter();
                group
                    .iter()
                    .map(|_| Attempt {
                        source: 0,
                        revision,
                        result: results.next().unwrap_or_else(|| {
                            Err(BackendError::internal(
                                "the backend returned fewer batch results than asked for",
                            ))
                        }),
                    })
                    .collect()
            }
            [] => Vec::new(),
        };
        for ((definition, answer), attempt) in group.into_iter().zip(attempts) {
            let settled = self.settle(&definition, attempt).await;
            // The cache holds the outcome before the flight leaves the map, so a caller
            // arriving in between finds one or the other, and never starts a second call.
            lock(&self.flights).remove(&definition.name);
            // A dropped receiver means every waiter went away; nothing to do.
            let _ = answer.send(settled);
        }
    }

    /// Records a backend call's result: a value replaces the cached one; a permanent
    /// error drops it (fail closed), and a not-found is remembered.
    async fn settle(&self, definition: &Definition, attempt: Attempt) -> FetchResult {
        let Attempt {
            source: index,
            revision,
            result,
        } = attempt;
        let source = definition.sources.get(index);
        match result {
            Ok(fetched) => {
                let secret = self.cache_entry(definition, index, fetched, revision);
                self.cache
                    .insert(definition.name.clone(), Arc::clone(&secret));
                definition.hot.set(Arc::clone(&secret));
                let settled = self.settled.fetch_add(1, Ordering::SeqCst) + 1;
                secret.settled.store(settled, Ordering::SeqCst);
                self.note_value(definition, &secret);
                self.missing.invalidate(&definition.name);
                if lock(&self.stale).remove(&definition.name) {
                    tracing::info!(
                        definition = %definition.name,
                        backend = %source.backend_name,
                        "the backend answers again; serving fresh values"
                    );
                }
                Ok(secret)
            }
            Err(err) => {
                tracing::debug!(
                    definition = %definition.name,
                    backend = %source.backend_name,
                    kind = %err.kind(),
                    temporary = err.is_temporary(),
                    "backend fetch failed"
                );
                let failure = Failure {
                    error: Arc::new(err),
                    source: index,
                };
                let err = &failure.error;
                if !err.is_temporary() {
                    self.cache.invalidate(&definition.name);
                    definition.hot.clear();
                    lock(&self.stale).remove(&definition.name);
                    if err.kind() == ErrorKind::NotFound
                        && !definition.policy.negative_ttl.is_zero()
                    {
                        let missing = Missing {
                            failure: failure.clone(),
                            ttl: definition.policy.negative_ttl,
                        };
                        self.missing
                            .insert(definition.name.clone(), Arc::new(missing));
                    }
                }
                Err(failure)
            }
        }
    }

    /// Logs the first stale answer of an outage for this definition.
    pub(super) fn note_stale(
        &self,
        definition: &Definition,
        stale: &CachedSecret,
        reason: &Failure,
    ) {
        if lock(&self.stale).insert(definition.name.clone()) {
            tracing::warn!(
                definition = %definition.name,
                backend = %definition.sources.get(reason.source).backend_name,
                age_seconds = stale.age().as_secs(),
                reason = %reason.error,
                "the backend fails for a temporary reason; serving the last good value until it answers (or for up to max_stale)"
            );
        }
    }

    /// Queues a background refresh; the queue is sent after [`REFRESH_WINDOW`].
    pub(super) fn refresh_soon(self: &Arc<Self>, definition: &Arc<Definition>) {
        let mut queue = lock(&self.refresh_queue);
        queue.push(Arc::clone(definition));
        if queue.len() == 1 {
            let state = Arc::clone(self);
            tokio::spawn(async move {
                tokio::time::sleep(REFRESH_WINDOW).await;
                let seen = state.settled();
                let due = std::mem::take(&mut *lock(&state.refresh_queue));
                let due: Vec<&Arc<Definition>> = due.iter().collect();
                // Nobody waits for these flights: their results land in the cache.
                drop(state.flights(&due, true, seen));
            });
        }
    }

    pub(super) async fn invalidate(&self, definition: &Definition) {
        self.cache.invalidate(&definition.name);
        definition.hot.clear();
        self.missing.invalidate(&definition.name);
    }

    pub(super) fn invalidate_all(&self) {
        self.cache.invalidate_all();
        for definition in self.definitions.values() {
            definition.hot.clear();
        }
        self.missing.invalidate_all();
    }

    /// How many callers wait on the definition's flight now (0: none under way).
    #[cfg(test)]
    pub(super) fn waiting_on(&self, name: &str) -> usize {
        lock(&self.flights)
            .get(name)
            .and_then(Shared::strong_count)
            .map_or(0, |count| count - 1)
    }

    #[cfg(test)]
    pub(super) async fn cached_entries(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    /// Applies the definition's trim policy and stamps the entry.
    fn cache_entry(
        &self,
        definition: &Definition,
        source: usize,
        fetched: Fetched,
        revision: Option<u64>,
    ) -> Arc<CachedSecret> {
        let (value, trimmed) = if definition.trim {
            trim::trim(fetched.value)
        } else {
            (fetched.value, false)
        };
        if trimmed {
            tracing::warn!(
                definition = %definition.name,
                "removed whitespace from the ends of the stored value; fix the stored secret, or set `trim: false` if the whitespace belongs to it"
            );
        }
        tracing::debug!(definition = %definition.name, backend = %definition.sources.get(source).backend_name, "fetched from backend");
        Arc::new(CachedSecret {
            is_text: value.expose_str().is_some(),
            fetched_at_header: OnceLock::new(),
            value,
            version: fetched.version,
            fetched_at: SystemTime::now(),
            trimmed,
            metadata: fetched.metadata,
            fetched: Instant::now(),
            source,
            revision,
            policy: definition.policy,
            refresh_after: self.refresh_after(&definition.policy),
            refresh_asked: AtomicBool::new(false),
            settled: AtomicU64::new(0),
        })
    }

    /// The refresh point, moved earlier by this daemon's share of up to a tenth, so
    /// that a fleet of daemons that filled their caches together does not refresh in
    /// step. The share is drawn once per daemon, not per entry: values fetched together
    /// must fall due together, or a batching backend's refreshes drift apart cycle
    /// after cycle and stop sharing calls (measured: from 4.7 ids a batch to 3.2 in a
    /// minute with a jitter drawn per fetch).
    fn refresh_after(&self, policy: &CachePolicy) -> Option<Duration> {
        let share = policy.refresh_ahead?.0;
        let point = policy.ttl.mul_f64(f64::from(share) / 100.0);
        Some(point.mul_f64(1.0 - self.refresh_jitter))
    }
}

type Answer = tokio::sync::oneshot::Sender<FetchResult>;

/// New flights grouped per call to make: each definition of a backend that does not
/// batch alone, those of a batching backend together (the backend splits a call
/// larger than its batch size). A definition with several sources is always alone:
/// its sources are asked one after the other, each only if the one before failed.
fn group_by_backend(
    started: Vec<(Arc<Definition>, Answer)>,
    batched: bool,
) -> Vec<Vec<(Arc<Definition>, Answer)>> {
    let mut groups: Vec<Vec<(Arc<Definition>, Answer)>> = Vec::new();
    for (definition, answer) in started {
        if batched
            && !definition.sources.several()
            && definition.sources.first().backend.max_batch() > 1
            && let Some(group) = groups.iter_mut().find(|group| {
                group.first().is_some_and(|(first, _)| {
                    !first.sources.several()
                        && same_backend(
                            &first.sources.first().backend,
                            &definition.sources.first().backend,
                        )
                })
            })
        {
            group.push((definition, answer));
        } else {
            groups.push(vec![(definition, answer)]);
        }
    }
    groups
}

fn same_backend(a: &Arc<dyn Backend>, b: &Arc<dyn Backend>) -> bool {
    Arc::ptr_eq(a, b)
}

/// A share from 0 to a tenth, different in every daemon.
fn random_share() -> f64 {
    let random = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
    #[allow(
        clippy::cast_precision_loss,
        reason = "a share of the refresh point; the lost low bits do not matter"
    )]
    let share = (random % 1_000) as f64 / 10_000.0;
    share
}
