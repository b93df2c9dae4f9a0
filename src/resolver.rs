//! Resolving definitions: the cache, single-flight, and trimming.
//!
//! A cache hit is one map lookup, one cache lookup and an `Arc` clone. Concurrent
//! misses for one definition share a single backend call (moka's
//! `or_try_insert_with` coalesces them); errors are never cached.

use crate::config::Config;
use crate::names::{self, NameError};
use crate::trim;
use moka::Expiry;
use moka::future::Cache;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};
use vaultbridge_backend_core::{Backend, BackendError, Fetched, SecretRef, SecretValue};

/// A configured definition, bound to its backend instance.
#[derive(Debug)]
pub(crate) struct Definition {
    pub name: Arc<str>,
    /// Shared by every definition of the backend.
    pub backend_name: Arc<str>,
    pub backend: Arc<dyn Backend>,
    pub secret: SecretRef,
    pub ttl: Duration,
    pub trim: bool,
    pub description: String,
}

/// Both maps are keyed by definition names, which come only from the config (a request
/// can look a name up but never insert one), so hash flooding is not a concern and the
/// default SipHash, two of them per cache hit, was measurable: about 330 instructions a
/// call under callgrind (scripts/profile).
type NameHasher = foldhash::fast::RandomState;

/// A value as cached: already trimmed per the definition's policy.
#[derive(Debug)]
pub(crate) struct CachedSecret {
    pub value: SecretValue,
    pub version: Option<String>,
    pub fetched_at: SystemTime,
    pub trimmed: bool,
    /// What the backend said about the secret (never secret material).
    pub metadata: BTreeMap<String, String>,
    /// The backend's revision when the fetch started; see [`Backend::revision`].
    revision: Option<u64>,
    ttl: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CacheOutcome {
    Hit,
    Miss,
}

#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub definition: Arc<Definition>,
    pub secret: Arc<CachedSecret>,
    pub cache: CacheOutcome,
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
}

struct PerEntryTtl;

impl Expiry<Arc<str>, Arc<CachedSecret>> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _name: &Arc<str>,
        secret: &Arc<CachedSecret>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(secret.ttl)
    }
}

pub(crate) struct Resolver {
    definitions: HashMap<Arc<str>, Arc<Definition>, NameHasher>,
    cache: Cache<Arc<str>, Arc<CachedSecret>, NameHasher>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("definitions", &self.definitions.len())
            .field("cached", &self.cache.entry_count())
            .finish()
    }
}

impl Resolver {
    /// Binds every definition of `config` to its backend from `backends`.
    pub(crate) fn new(
        config: &Config,
        backends: &BTreeMap<String, Arc<dyn Backend>>,
    ) -> Result<Self, SetupError> {
        // One shared name per backend, not one copy per definition.
        let named: BTreeMap<&str, (Arc<str>, &Arc<dyn Backend>)> = backends
            .iter()
            .map(|(name, backend)| (name.as_str(), (Arc::from(name.as_str()), backend)))
            .collect();
        let mut definitions = Vec::with_capacity(config.definitions.len());
        for (name, definition) in &config.definitions {
            let (backend_name, backend) =
                named.get(definition.backend.as_str()).ok_or_else(|| {
                    SetupError::BackendNotBuilt {
                        definition: name.clone(),
                        backend: definition.backend.clone(),
                    }
                })?;
            definitions.push(Arc::new(Definition {
                name: Arc::from(name.as_str()),
                backend_name: backend_name.clone(),
                backend: Arc::clone(backend),
                secret: definition.secret.clone(),
                ttl: config.ttl_of(definition),
                trim: definition.trim,
                description: definition.description.clone(),
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
        Self {
            definitions: definitions
                .into_iter()
                .map(|definition| (definition.name.clone(), definition))
                .collect(),
            cache: Cache::builder()
                .max_capacity(max_entries)
                .expire_after(PerEntryTtl)
                .build_with_hasher(NameHasher::default()),
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

    pub(crate) async fn resolve(&self, name: &str) -> Result<Resolved, ResolveError> {
        let definition = self.definition(name)?;
        // Read before fetching: a change during the fetch leaves the entry marked with
        // the older revision, so the next resolve reads again.
        let revision = definition.backend.revision();
        if let Some(hit) = self.cached(definition, revision).await {
            return Ok(hit);
        }
        self.fill(definition, fetch(definition, revision)).await
    }

    /// Resolves many names, one result per name, in order. Misses for a backend that
    /// batches ([`Backend::max_batch`] above 1) share one `fetch_many` call; each
    /// definition still fills its own cache entry, so single-flight holds against
    /// concurrent single resolves.
    pub(crate) async fn resolve_many(
        &self,
        names: &[String],
    ) -> Vec<Result<Resolved, ResolveError>> {
        enum Slot<'a> {
            Done(Result<Resolved, ResolveError>),
            Pending(&'a Arc<Definition>, Option<u64>),
        }
        let mut slots = Vec::with_capacity(names.len());
        for name in names {
            slots.push(match self.definition(name) {
                Err(err) => Slot::Done(Err(err)),
                Ok(definition) => {
                    let revision = definition.backend.revision();
                    match self.cached(definition, revision).await {
                        Some(hit) => Slot::Done(Ok(hit)),
                        None => Slot::Pending(definition, revision),
                    }
                }
            });
        }
        let batches = Batches::plan(slots.iter().filter_map(|slot| match slot {
            Slot::Pending(definition, _) => Some(*definition),
            Slot::Done(_) => None,
        }));
        let resolutions = futures_util::future::join_all(slots.into_iter().map(|slot| async {
            match slot {
                Slot::Done(result) => result,
                Slot::Pending(definition, revision) => {
                    let init = async {
                        match batches.enqueue(definition) {
                            Some(reply) => match reply.await {
                                Ok(result) => result
                                    .map(|fetched| cache_entry(definition, fetched, revision))
                                    .map_err(Arc::new),
                                Err(_) => Err(Arc::new(BackendError::internal(
                                    "a batch fetch ended without an answer",
                                ))),
                            },
                            None => fetch(definition, revision).await,
                        }
                    };
                    self.fill(definition, init).await
                }
            }
        }));
        // `join` polls the resolutions first: every fill that runs its own init has
        // enqueued its secret before the batches are sent.
        let (results, ()) = futures_util::future::join(resolutions, batches.dispatch()).await;
        results
    }

    /// A cache hit, if the cached value is still current. A stale value is dropped.
    async fn cached(
        &self,
        definition: &Arc<Definition>,
        revision: Option<u64>,
    ) -> Option<Resolved> {
        let secret = self.cache.get(&definition.name).await?;
        if secret.revision == revision {
            return Some(Resolved {
                definition: definition.clone(),
                secret,
                cache: CacheOutcome::Hit,
            });
        }
        self.cache.invalidate(&definition.name).await;
        None
    }

    /// Fills the definition's cache entry with `init`, unless a concurrent caller is
    /// already filling it, in which case this waits for that caller's result.
    async fn fill(
        &self,
        definition: &Arc<Definition>,
        init: impl Future<Output = Result<Arc<CachedSecret>, Arc<BackendError>>>,
    ) -> Result<Resolved, ResolveError> {
        let entry = self
            .cache
            .entry(definition.name.clone())
            .or_try_insert_with(init)
            .await
            .map_err(|source: Arc<Arc<BackendError>>| ResolveError::Backend {
                definition: definition.name.to_string(),
                backend: definition.backend_name.to_string(),
                source: Arc::clone(&source),
            })?;
        Ok(Resolved {
            definition: definition.clone(),
            secret: entry.into_value(),
            cache: CacheOutcome::Miss,
        })
    }

    /// Drops one definition's cached value.
    pub(crate) async fn invalidate(&self, name: &str) -> Result<(), ResolveError> {
        let definition = self.definition(name)?;
        self.cache.invalidate(&definition.name).await;
        Ok(())
    }

    pub(crate) fn invalidate_all(&self) {
        self.cache.invalidate_all();
    }

    /// How many values are cached now (after pending cache maintenance).
    #[cfg(test)]
    pub(crate) async fn cached_entries(&self) -> u64 {
        self.cache.run_pending_tasks().await;
        self.cache.entry_count()
    }
}

type Reply = tokio::sync::oneshot::Sender<Result<Fetched, BackendError>>;

/// The batched fetches of one `resolve_many`: one queue per batching backend. Only
/// definitions whose cache fill actually runs enqueue (one being filled by a
/// concurrent caller is waited for, not fetched again); a definition that comes after
/// the queue was sent fetches on its own.
struct Batches {
    groups: Vec<BatchGroup>,
}

struct BatchGroup {
    backend: Arc<dyn Backend>,
    /// `None` once sent.
    queue: Mutex<Option<Vec<(SecretRef, Reply)>>>,
}

impl Batches {
    fn plan<'a>(pending: impl Iterator<Item = &'a Arc<Definition>>) -> Self {
        let mut groups: Vec<BatchGroup> = Vec::new();
        for definition in pending {
            let batching = definition.backend.max_batch() > 1;
            if batching
                && !groups
                    .iter()
                    .any(|g| Arc::ptr_eq(&g.backend, &definition.backend))
            {
                groups.push(BatchGroup {
                    backend: definition.backend.clone(),
                    queue: Mutex::new(Some(Vec::new())),
                });
            }
        }
        Self { groups }
    }

    /// Queues the definition's secret, if its backend batches and the batch has not
    /// been sent yet.
    fn enqueue(
        &self,
        definition: &Definition,
    ) -> Option<tokio::sync::oneshot::Receiver<Result<Fetched, BackendError>>> {
        let group = self
            .groups
            .iter()
            .find(|group| Arc::ptr_eq(&group.backend, &definition.backend))?;
        let mut queue = group.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let queue = queue.as_mut()?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        queue.push((definition.secret.clone(), reply));
        Some(answer)
    }

    async fn dispatch(&self) {
        // One turn for fills that were briefly held up, so they can still join.
        tokio::task::yield_now().await;
        futures_util::future::join_all(self.groups.iter().map(|group| async move {
            let queued = group
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
                .unwrap_or_default();
            if queued.is_empty() {
                return;
            }
            let (refs, replies): (Vec<SecretRef>, Vec<Reply>) = queued.into_iter().unzip();
            let results = group.backend.fetch_many(&refs).await;
            let mut results = results.into_iter();
            for reply in replies {
                let result = results.next().unwrap_or_else(|| {
                    Err(BackendError::internal(
                        "the backend returned fewer batch results than asked for",
                    ))
                });
                // A dropped receiver means the caller went away; nothing to do.
                let _ = reply.send(result);
            }
        }))
        .await;
    }
}

async fn fetch(
    definition: &Definition,
    revision: Option<u64>,
) -> Result<Arc<CachedSecret>, Arc<BackendError>> {
    let fetched = definition
        .backend
        .fetch(&definition.secret)
        .await
        .map_err(|err| {
            tracing::debug!(
                definition = %definition.name,
                backend = %definition.backend_name,
                kind = %err.kind(),
                temporary = err.is_temporary(),
                "backend fetch failed"
            );
            Arc::new(err)
        })?;
    Ok(cache_entry(definition, fetched, revision))
}

/// Applies the definition's trim policy and stamps the entry.
fn cache_entry(
    definition: &Definition,
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
    tracing::debug!(definition = %definition.name, backend = %definition.backend_name, "fetched from backend");
    Arc::new(CachedSecret {
        value,
        version: fetched.version,
        fetched_at: SystemTime::now(),
        trimmed,
        metadata: fetched.metadata,
        revision,
        ttl: definition.ttl,
    })
}

#[cfg(test)]
mod tests;
