//! Resolving definitions: the cache, single-flight, serving stale values through an
//! outage, refreshing ahead of expiry, and trimming.
//!
//! A cache hit is one map lookup, one cache lookup, a clock read and an `Arc` clone.
//! Every backend call for a definition goes through one flight at a time (see
//! [`state`]): concurrent misses, expired entries, `refresh` requests and background
//! refreshes all share it.
//!
//! What is served when a backend call fails:
//! - a temporary failure (unreachable, timeout, throttled, 5xx): the last good value,
//!   for up to the definition's `max_stale` past its TTL, marked stale with the reason;
//!   unless the caller asked for freshness (`max_age`, `refresh`), which a stale value
//!   cannot give;
//! - a permanent answer (not found, denied, disabled, a missing key): the cached value
//!   is dropped and the error returned, never a stale value; a not-found is remembered
//!   for `negative_ttl`.

mod entry;
mod fallback;
mod reload;
mod state;

use crate::config::Config;
use crate::metrics::{BackendMeter, Metrics};
use crate::names::{self, NameError};
pub(crate) use entry::{CachedSecret, Definition, Source, Sources};
pub(crate) use reload::Generation;
pub(crate) use state::Change;
use state::Failure;
use state::State;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use vaultbridge_backend_core::{Backend, BackendError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CacheOutcome {
    /// Served from the cache without a backend call.
    Hit,
    /// This request waited for a backend call (its own or a shared one).
    Miss,
    /// The backend call failed for a temporary reason; the last good value was served.
    Stale,
}

impl CacheOutcome {
    /// The outcome as the audit trail and the HTTP face's `X-Vaultbridge-Cache` name it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Stale => "stale",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub definition: Arc<Definition>,
    pub secret: Arc<CachedSecret>,
    pub cache: CacheOutcome,
    /// Why a stale value was served: the backend's temporary error.
    pub stale_reason: Option<Arc<BackendError>>,
    /// How old the value was when served (read once, here, for the whole answer).
    pub age: Duration,
}

/// A cache hit as [`Resolver::cache_hit`] gives it: the definition borrowed from the
/// resolver, which saves the reference count a [`Resolved`] takes (a write to a line
/// every worker thread reads, on every hit).
#[derive(Debug)]
pub(crate) struct Hit<'a> {
    pub definition: &'a Definition,
    pub secret: Arc<CachedSecret>,
    pub age: Duration,
}

impl Resolved {
    /// The source the value came from.
    pub(crate) fn source(&self) -> &Source {
        self.definition.sources.get(self.secret.source)
    }
}

impl<'a> Hit<'a> {
    /// The source the value came from.
    pub(crate) fn source(&self) -> &'a Source {
        self.definition.sources.get(self.secret.source)
    }
}

/// What a caller asks of a value's freshness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Freshness {
    /// Accept only a value fetched within this long.
    pub max_age: Option<Duration>,
    /// Read the backend now, whatever is cached.
    pub refresh: bool,
}

impl Freshness {
    /// A caller who asked for freshness is not served a stale value instead.
    fn demanded(self) -> bool {
        self.refresh || self.max_age.is_some()
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ResolveError {
    #[error("{0}")]
    InvalidName(#[from] NameError),
    #[error("no secret definition named `{name}`")]
    UnknownDefinition { name: String },
    #[error("definition `{definition}` (backend `{backend}`): {source}")]
    Backend {
        definition: String,
        backend: String,
        #[source]
        source: Arc<BackendError>,
    },
}

/// Why [`Resolver::new`] cannot bind the config's definitions to the built backends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SetupError {
    #[error("definition `{definition}` names backend `{backend}`, which was not built")]
    BackendNotBuilt { definition: String, backend: String },
    #[error("definition `{definition}` has no source")]
    NoSource { definition: String },
}

pub(crate) struct Resolver {
    definitions: state::Definitions,
    state: Arc<State>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("definitions", &self.definitions.len())
            .field("state", &self.state)
            .finish()
    }
}

impl Resolver {
    /// Binds every definition of `config` to its backends from `backends`, each backend
    /// behind its concurrency limit and circuit breaker.
    pub(crate) fn new(
        config: &Config,
        backends: &BTreeMap<String, Arc<dyn Backend>>,
    ) -> Result<Self, SetupError> {
        Self::metered(config, backends, None)
    }

    /// [`Resolver::new`], counting into `metrics` when given.
    pub(crate) fn metered(
        config: &Config,
        backends: &BTreeMap<String, Arc<dyn Backend>>,
        metrics: Option<&Metrics>,
    ) -> Result<Self, SetupError> {
        // One shared name and one protected instance per backend, not one per definition.
        let named: BTreeMap<&str, Built> = backends
            .iter()
            .map(|(name, backend)| {
                (
                    name.as_str(),
                    reload::protect(config, name, backend, metrics),
                )
            })
            .collect();
        Self::bind(config, &named, metrics)
    }

    /// Binds every definition of `config` to its protected backend in `named`.
    fn bind(
        config: &Config,
        named: &BTreeMap<&str, Built>,
        metrics: Option<&Metrics>,
    ) -> Result<Self, SetupError> {
        let mut definitions = Vec::with_capacity(config.definitions.len());
        for (name, definition) in &config.definitions {
            let mut sources = Vec::with_capacity(definition.sources.len());
            for source in &definition.sources {
                let (backend_name, backend, meter) = named
                    .get(source.backend.as_str())
                    .ok_or_else(|| SetupError::BackendNotBuilt {
                        definition: name.clone(),
                        backend: source.backend.clone(),
                    })?;
                sources.push(Source {
                    backend_name: backend_name.clone(),
                    backend: Arc::clone(backend),
                    secret: source.secret.clone(),
                    meter: meter.clone(),
                });
            }
            let mut sources = sources.into_iter();
            let Some(first) = sources.next() else {
                return Err(SetupError::NoSource {
                    definition: name.clone(),
                });
            };
            definitions.push(Arc::new(Definition {
                name: Arc::from(name.as_str()),
                sources: Sources::new(first, sources.collect()),
                fallback_on: definition.fallback_on,
                policy: config.policy_of(definition),
                trim: definition.trim,
                description: definition.description.clone(),
                meter: metrics
                    .map(|metrics| metrics.definition(name))
                    .unwrap_or_default(),
                hot: Default::default(),
            }));
        }
        Ok(Self::from_definitions(
            definitions,
            config.cache.max_entries,
        ))
    }

    pub(crate) fn from_definitions(
        definitions: impl IntoIterator<Item = Arc<Definition>>,
        max_entries: u64,
    ) -> Self {
        let definitions: state::Definitions = Arc::new(
            definitions
                .into_iter()
                .map(|definition| (definition.name.clone(), definition))
                .collect(),
        );
        Self {
            state: Arc::new(State::new(max_entries, Arc::clone(&definitions))),
            definitions,
        }
    }

    /// Definitions sorted by name.
    pub(crate) fn definitions(&self) -> Vec<Arc<Definition>> {
        let mut all: Vec<_> = self.definitions.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    pub(crate) fn definition(&self, name: &str) -> Result<&Arc<Definition>, ResolveError> {
        if let Some(definition) = self.definitions.get(name) {
            return Ok(definition);
        }
        names::validate(name)?;
        Err(ResolveError::UnknownDefinition {
            name: name.to_owned(),
        })
    }

    pub(crate) fn resolve<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Future<Output = Result<Resolved, ResolveError>> + 'a {
        self.resolve_with(name, Freshness::default())
    }

    pub(crate) async fn resolve_with(
        &self,
        name: &str,
        freshness: Freshness,
    ) -> Result<Resolved, ResolveError> {
        let definition = self.definition(name)?;
        let seen = self.state.settled();
        // No await before a hit: the future a caller builds and moves on every request
        // stays small.
        let cached = self.state.cached(definition);
        let cached = match self.judge(definition, cached, freshness) {
            Ok(hit) => return Ok(hit),
            Err(cached) => cached,
        };
        // Boxed: the miss path's future is several times the hit path's, and every
        // caller's future (moved on each request) would otherwise carry it.
        Box::pin(self.fetch(definition, cached, freshness, seen)).await
    }

    /// [`Self::resolve_with`]'s answer when the cache gives it at once, without waiting;
    /// `None` when it needs a backend call, a remembered not-found or an error.
    pub(crate) fn cache_hit(&self, name: &str, freshness: Freshness) -> Option<Hit<'_>> {
        let definition = self.definitions.get(name)?;
        let cached = self.state.cached(definition);
        let (secret, age) = self.fresh(definition, cached, freshness).ok()?;
        Some(Hit {
            definition,
            secret,
            age,
        })
    }

    /// The miss path of [`Self::resolve_with`]: a remembered not-found, or one flight.
    async fn fetch(
        &self,
        definition: &Arc<Definition>,
        cached: Option<Arc<CachedSecret>>,
        freshness: Freshness,
        seen: u64,
    ) -> Result<Resolved, ResolveError> {
        if cached.is_none()
            && let Some(err) = self.known_missing(definition, freshness)
        {
            return Err(backend_error(definition, err));
        }
        let mut flights = self.state.flights(&[definition], false, seen);
        let result = match flights.pop() {
            Some(flight) => flight.await,
            None => Err(Failure::internal("no backend call was started")),
        };
        self.conclude(definition, cached, freshness, result)
    }

    /// Resolves many names, one result per name, in order. Misses for a backend that
    /// batches ([`Backend::max_batch`] above 1) share one `fetch_many` call; each
    /// definition still has its own flight, so single-flight holds against concurrent
    /// single resolves.
    pub(crate) async fn resolve_many(
        &self,
        requests: &[(String, Freshness)],
    ) -> Vec<Result<Resolved, ResolveError>> {
        enum Slot<'a> {
            Done(Result<Resolved, ResolveError>),
            Pending(&'a Arc<Definition>, Option<Arc<CachedSecret>>, Freshness),
        }
        let seen = self.state.settled();
        let mut slots = Vec::with_capacity(requests.len());
        for (name, freshness) in requests {
            slots.push(match self.definition(name) {
                Err(err) => Slot::Done(Err(err)),
                Ok(definition) => match self.lookup(definition, *freshness) {
                    Lookup::Hit(hit) => Slot::Done(Ok(hit)),
                    Lookup::Known(err) => Slot::Done(Err(backend_error(definition, err))),
                    Lookup::Fetch(cached) => Slot::Pending(definition, cached, *freshness),
                },
            });
        }
        let pending: Vec<&Arc<Definition>> = slots
            .iter()
            .filter_map(|slot| match slot {
                Slot::Pending(definition, _, _) => Some(*definition),
                Slot::Done(_) => None,
            })
            .collect();
        let mut flights = self.state.flights(&pending, true, seen).into_iter();
        let mut waiting = Vec::with_capacity(slots.len());
        for slot in slots {
            waiting.push(match slot {
                Slot::Done(result) => Err(result),
                Slot::Pending(definition, cached, freshness) => {
                    Ok((definition, cached, freshness, flights.next()))
                }
            });
        }
        futures_util::future::join_all(waiting.into_iter().map(|slot| async move {
            match slot {
                Err(result) => result,
                Ok((definition, cached, freshness, flight)) => {
                    let result = match flight {
                        Some(flight) => flight.await,
                        None => Err(Failure::internal("no backend call was started")),
                    };
                    self.conclude(definition, cached, freshness, result)
                }
            }
        }))
        .await
    }

    /// What the cache can answer without a backend call.
    fn lookup(&self, definition: &Arc<Definition>, freshness: Freshness) -> Lookup {
        let cached = self.state.cached(definition);
        match self.judge(definition, cached, freshness) {
            Ok(hit) => Lookup::Hit(hit),
            Err(None) => match self.known_missing(definition, freshness) {
                Some(err) => Lookup::Known(err),
                None => Lookup::Fetch(None),
            },
            Err(cached) => Lookup::Fetch(cached),
        }
    }

    /// A not-found remembered from a recent call, unless the caller asks to read again.
    fn known_missing(&self, definition: &Definition, freshness: Freshness) -> Option<Failure> {
        if freshness.refresh {
            return None;
        }
        let err = self.state.known_missing(&definition.name)?;
        definition.meter.negative();
        Some(err)
    }

    /// The cached value as a hit, or `Err` with what a backend call starts from: the
    /// value (which may still be served stale) when it is too old or out of date.
    fn judge(
        &self,
        definition: &Arc<Definition>,
        cached: Option<Arc<CachedSecret>>,
        freshness: Freshness,
    ) -> Result<Resolved, Option<Arc<CachedSecret>>> {
        let (secret, age) = self.fresh(definition, cached, freshness)?;
        Ok(Resolved {
            definition: definition.clone(),
            secret,
            cache: CacheOutcome::Hit,
            stale_reason: None,
            age,
        })
    }

    /// [`Self::judge`] without the answer: the value and its age, when it is a hit.
    fn fresh(
        &self,
        definition: &Arc<Definition>,
        cached: Option<Arc<CachedSecret>>,
        freshness: Freshness,
    ) -> Result<(Arc<CachedSecret>, Duration), Option<Arc<CachedSecret>>> {
        let Some(secret) = cached else {
            return Err(None);
        };
        // Compared with the revision read when the fetch started: a change during the
        // fetch leaves the entry marked with the older one, so this resolve reads again.
        // One clock reading for the revision and the age.
        let now = Instant::now();
        let revision = definition.sources.get(secret.source).backend.revision(now);
        if secret.revision != revision || freshness.refresh {
            return Err(Some(secret));
        }
        let age = secret.age_at(now);
        if age >= secret.policy.ttl || freshness.max_age.is_some_and(|max| age > max) {
            return Err(Some(secret));
        }
        if let Some(after) = secret.refresh_after
            && age >= after
            && !secret.refresh_asked.swap(true, Ordering::Relaxed)
        {
            definition.meter.refresh_ahead();
            self.state.refresh_soon(definition);
        }
        definition.meter.hit();
        Ok((secret, age))
    }

    /// Turns a flight's result into the caller's answer: the new value, the last good
    /// one while the backend fails temporarily, or the error.
    fn conclude(
        &self,
        definition: &Arc<Definition>,
        cached: Option<Arc<CachedSecret>>,
        freshness: Freshness,
        result: Result<Arc<CachedSecret>, Failure>,
    ) -> Result<Resolved, ResolveError> {
        match result {
            Ok(secret) => {
                definition.meter.miss();
                Ok(Resolved {
                    definition: definition.clone(),
                    age: secret.age(),
                    secret,
                    cache: CacheOutcome::Miss,
                    stale_reason: None,
                })
            }
            Err(err) => {
                if err.error.is_temporary()
                    && !freshness.demanded()
                    && let Some(stale) = cached
                {
                    let age = stale.age();
                    if age < stale.policy.ttl.saturating_add(stale.policy.max_stale) {
                        definition.meter.stale();
                        self.state.note_stale(definition, &stale, &err);
                        return Ok(Resolved {
                            definition: definition.clone(),
                            secret: stale,
                            cache: CacheOutcome::Stale,
                            stale_reason: Some(err.error),
                            age,
                        });
                    }
                }
                definition.meter.miss();
                Err(backend_error(definition, err))
            }
        }
    }

    /// Changes found by backend reads from now on.
    pub(crate) fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.state.subscribe()
    }

    /// Starts a backend read for each definition whose value is missing, past its
    /// refresh point (or TTL), or older than its backend's latest revision, so that
    /// watched definitions find rotations whether or not anyone reads them. Reads
    /// already under way are joined, not repeated; a remembered not-found is left alone.
    pub(crate) async fn keep_fresh(&self, definitions: &[Arc<Definition>]) {
        let seen = self.state.settled();
        let mut due = Vec::new();
        for definition in definitions {
            let stale = match self.state.cached(definition) {
                Some(secret) => {
                    let now = Instant::now();
                    let revision = definition.sources.get(secret.source).backend.revision(now);
                    secret.revision != revision
                        || secret.age_at(now) >= secret.refresh_after.unwrap_or(secret.policy.ttl)
                }
                None => self.state.known_missing(&definition.name).is_none(),
            };
            if stale {
                due.push(definition);
            }
        }
        if !due.is_empty() {
            // Nobody waits here: results land in the cache and reach watchers as changes.
            drop(self.state.flights(&due, true, seen));
        }
    }

    /// Drops one definition's cached value (and a remembered not-found).
    pub(crate) async fn invalidate(&self, name: &str) -> Result<(), ResolveError> {
        let definition = self.definition(name)?;
        self.state.invalidate(definition).await;
        Ok(())
    }

    pub(crate) fn invalidate_all(&self) {
        self.state.invalidate_all();
    }

    /// How many values are cached and their bytes, walked now (for the metrics).
    pub(crate) fn cache_usage(&self) -> (u64, u64) {
        self.state.usage()
    }

    /// How many values are cached now (after pending cache maintenance).
    #[cfg(test)]
    pub(crate) async fn cached_entries(&self) -> u64 {
        self.state.cached_entries().await
    }
}

/// A backend as definitions share it: its name, the protected instance, its counters.
type Built = (Arc<str>, Arc<dyn Backend>, BackendMeter);

enum Lookup {
    Hit(Resolved),
    /// A not-found remembered from a recent call.
    Known(Failure),
    /// A backend call is needed; the cached value, if any, may still be served stale.
    Fetch(Option<Arc<CachedSecret>>),
}

fn backend_error(definition: &Definition, failure: Failure) -> ResolveError {
    ResolveError::Backend {
        definition: definition.name.to_string(),
        backend: definition
            .sources
            .get(failure.source)
            .backend_name
            .to_string(),
        source: failure.error,
    }
}

#[cfg(test)]
mod hot_tests;
#[cfg(test)]
mod sources_tests;
#[cfg(test)]
mod stale_tests;
#[cfg(test)]
mod tests;
