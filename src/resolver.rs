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
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use vaultbridge_backend_core::{Backend, BackendError, SecretRef, SecretValue};

/// A configured definition, bound to its backend instance.
#[derive(Debug)]
pub struct Definition {
    pub name: Arc<str>,
    pub backend_name: String,
    pub backend: Arc<dyn Backend>,
    pub secret: SecretRef,
    pub ttl: Duration,
    pub trim: bool,
    pub description: String,
}

/// A value as cached: already trimmed per the definition's policy.
#[derive(Debug)]
pub struct CachedSecret {
    pub value: SecretValue,
    pub version: Option<String>,
    pub fetched_at: SystemTime,
    pub trimmed: bool,
    /// The backend's revision when the fetch started; see [`Backend::revision`].
    revision: Option<u64>,
    ttl: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Miss,
}

#[derive(Debug, Clone)]
pub struct Resolved {
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

pub struct Resolver {
    definitions: HashMap<Arc<str>, Arc<Definition>>,
    cache: Cache<Arc<str>, Arc<CachedSecret>>,
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
    pub fn new(
        config: &Config,
        backends: &BTreeMap<String, Arc<dyn Backend>>,
    ) -> Result<Self, String> {
        let mut definitions = HashMap::new();
        for (name, definition) in &config.definitions {
            let backend = backends.get(&definition.backend).ok_or_else(|| {
                format!(
                    "definition `{name}` names backend `{}`, which was not built",
                    definition.backend
                )
            })?;
            let name: Arc<str> = Arc::from(name.as_str());
            definitions.insert(
                name.clone(),
                Arc::new(Definition {
                    name,
                    backend_name: definition.backend.clone(),
                    backend: backend.clone(),
                    secret: definition.secret.clone(),
                    ttl: config.ttl_of(definition),
                    trim: definition.trim,
                    description: definition.description.clone(),
                }),
            );
        }
        Ok(Self::from_definitions(
            definitions.into_values(),
            config.cache.max_entries,
        ))
    }

    pub fn from_definitions(
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
                .build(),
        }
    }

    /// Definitions sorted by name.
    pub fn definitions(&self) -> Vec<Arc<Definition>> {
        let mut all: Vec<_> = self.definitions.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    pub fn definition(&self, name: &str) -> Result<&Arc<Definition>, ResolveError> {
        if let Some(definition) = self.definitions.get(name) {
            return Ok(definition);
        }
        names::validate(name)?;
        Err(ResolveError::UnknownDefinition {
            name: name.to_owned(),
        })
    }

    pub async fn resolve(&self, name: &str) -> Result<Resolved, ResolveError> {
        let definition = self.definition(name)?;
        // Read before fetching: a change during the fetch leaves the entry marked with
        // the older revision, so the next resolve reads again.
        let revision = definition.backend.revision();
        if let Some(secret) = self.cache.get(name).await {
            if secret.revision == revision {
                return Ok(Resolved {
                    definition: definition.clone(),
                    secret,
                    cache: CacheOutcome::Hit,
                });
            }
            self.cache.invalidate(name).await;
        }
        let entry = self
            .cache
            .entry(definition.name.clone())
            .or_try_insert_with(fetch(definition, revision))
            .await
            .map_err(|source| ResolveError::Backend {
                definition: definition.name.to_string(),
                backend: definition.backend_name.clone(),
                source,
            })?;
        Ok(Resolved {
            definition: definition.clone(),
            secret: entry.into_value(),
            cache: CacheOutcome::Miss,
        })
    }

    /// Drops one definition's cached value.
    pub async fn invalidate(&self, name: &str) -> Result<(), ResolveError> {
        let definition = self.definition(name)?;
        self.cache.invalidate(&definition.name).await;
        Ok(())
    }

    pub fn invalidate_all(&self) {
        self.cache.invalidate_all();
    }

    /// How many values are cached now (after pending cache maintenance).
    pub async fn cached_entries(&self) -> u64 {
        self.cache.run_pending_tasks().await;
        self.cache.entry_count()
    }
}

async fn fetch(
    definition: &Definition,
    revision: Option<u64>,
) -> Result<Arc<CachedSecret>, BackendError> {
    let fetched = definition
        .backend
        .fetch(&definition.secret)
        .await
        .inspect_err(|err| {
            tracing::debug!(
                definition = %definition.name,
                backend = %definition.backend_name,
                kind = %err.kind(),
                temporary = err.is_temporary(),
                "backend fetch failed"
            );
        })?;
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
    Ok(Arc::new(CachedSecret {
        value,
        version: fetched.version,
        fetched_at: SystemTime::now(),
        trimmed,
        revision,
        ttl: definition.ttl,
    }))
}

#[cfg(test)]
mod tests;
