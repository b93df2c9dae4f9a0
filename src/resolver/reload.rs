//! What a config reload asks of the resolver: backends kept across reloads together with
//! their protection (breaker state, concurrency limit), and the cache carried over for
//! the definitions whose source did not change.

use super::{Built, Definition, Resolver, SetupError};
use crate::config::Config;
use crate::metrics::{BackendMeter, Metrics};
use crate::protect::{Protected, Protection};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use vaultbridge_backend_core::Backend;

/// A built backend and the protected instance its definitions call.
#[derive(Debug, Clone)]
pub(crate) struct BoundBackend {
    pub name: Arc<str>,
    /// The instance the backend's crate built: kept while its settings do not change.
    pub raw: Arc<dyn Backend>,
    pub protected: Arc<dyn Backend>,
    pub protection: Protection,
    /// Its counters, where a fallback from it is counted.
    pub meter: BackendMeter,
}

/// The protection that applies to backend `name`: its own settings over the `cache`
/// section's.
fn protection_of(config: &Config, name: &str) -> Protection {
    config
        .backends
        .get(name)
        .map_or(config.cache.protection, |backend| {
            backend.protection.over(config.cache.protection)
        })
}

fn bind_backend(
    config: &Config,
    name: &str,
    raw: &Arc<dyn Backend>,
    metrics: Option<&Metrics>,
) -> BoundBackend {
    let shared_name: Arc<str> = Arc::from(name);
    let protection = protection_of(config, name);
    let meter = metrics
        .map(|metrics| metrics.backend(name))
        .unwrap_or_default();
    let protected: Arc<dyn Backend> = Arc::new(
        Protected::new(shared_name.clone(), Arc::clone(raw), protection).metered(meter.clone()),
    );
    BoundBackend {
        name: shared_name,
        raw: Arc::clone(raw),
        protected,
        protection,
        meter,
    }
}

/// Backend `name` behind its concurrency limit and circuit breaker.
pub(super) fn protect(
    config: &Config,
    name: &str,
    raw: &Arc<dyn Backend>,
    metrics: Option<&Metrics>,
) -> Built {
    let bound = bind_backend(config, name, raw, metrics);
    (bound.name, bound.protected, bound.meter)
}

/// One config's resolver and the backends it is bound to.
#[derive(Debug)]
pub(crate) struct Generation {
    pub resolver: Arc<Resolver>,
    pub backends: BTreeMap<String, BoundBackend>,
}

/// What became of the definitions in a reload, by name.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct DefinitionChanges {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Their source changed: their cached values were left behind.
    pub changed: Vec<String>,
    /// They kept their cached values.
    pub kept: Vec<String>,
}

impl Generation {
    /// The generation of the config the daemon starts with.
    pub(crate) fn first(
        config: &Config,
        built: &BTreeMap<String, Arc<dyn Backend>>,
        metrics: Option<&Metrics>,
    ) -> Result<Self, SetupError> {
        let backends: BTreeMap<String, BoundBackend> = built
            .iter()
            .map(|(name, raw)| (name.clone(), bind_backend(config, name, raw, metrics)))
            .collect();
        let resolver = Resolver::bind(config, &named(&backends), metrics)?;
        Ok(Self {
            resolver: Arc::new(resolver),
            backends,
        })
    }

    /// The generation of a reloaded `config`. `built` holds an instance for each of its
    /// backends: those in `kept` are this generation's own (their settings did not
    /// change), the others new. A kept backend keeps its protection too, breaker state
    /// and all, unless its protection settings changed. Calls in flight go on in this
    /// generation's cache; the next one starts with the values of every definition
    /// whose source is unchanged.
    pub(crate) async fn next(
        &self,
        config: &Config,
        built: &BTreeMap<String, Arc<dyn Backend>>,
        kept: &BTreeSet<String>,
        metrics: Option<&Metrics>,
    ) -> Result<(Self, DefinitionChanges), SetupError> {
        let backends: BTreeMap<String, BoundBackend> = built
            .iter()
            .map(|(name, raw)| {
                let bound = match self.backends.get(name) {
                    Some(old)
                        if kept.contains(name)
                            && Arc::ptr_eq(&old.raw, raw)
                            && old.protection == protection_of(config, name) =>
                    {
                        old.clone()
                    }
                    _ => bind_backend(config, name, raw, metrics),
                };
                (name.clone(), bound)
            })
            .collect();
        let mut resolver = Resolver::bind(config, &named(&backends), metrics)?;
        let mut changes = DefinitionChanges::default();
        for (name, definition) in resolver.definitions.iter() {
            match self.resolver.definitions.get(name) {
                None => changes.added.push(name.to_string()),
                Some(old) if keeps_cache(old, definition, kept) => {
                    changes.kept.push(name.to_string());
                }
                Some(_) => changes.changed.push(name.to_string()),
            }
        }
        for name in self.resolver.definitions.keys() {
            if !resolver.definitions.contains_key(name) {
                changes.removed.push(name.to_string());
            }
        }
        for list in [
            &mut changes.added,
            &mut changes.removed,
            &mut changes.changed,
            &mut changes.kept,
        ] {
            list.sort();
        }
        let keep: BTreeSet<&str> = changes.kept.iter().map(String::as_str).collect();
        let state = self
            .resolver
            .state
            .successor(
                config.cache.max_entries,
                Arc::clone(&resolver.definitions),
                |name| keep.contains(name),
                |name| resolver.definitions.contains_key(name),
            )
            .await;
        resolver.state = Arc::new(state);
        Ok((
            Self {
                resolver: Arc::new(resolver),
                backends,
            },
            changes,
        ))
    }
}

fn named(backends: &BTreeMap<String, BoundBackend>) -> BTreeMap<&str, Built> {
    backends
        .iter()
        .map(|(name, bound)| {
            (
                name.as_str(),
                (
                    bound.name.clone(),
                    Arc::clone(&bound.protected),
                    bound.meter.clone(),
                ),
            )
        })
        .collect()
}

/// Whether a definition's cached value is still what the reloaded definition would
/// read: the same sources in the same order (each the same backend instance and
/// secret: id, key, version), the same fallback rule, trimming and cache policy. A
/// changed description or a kept backend's new breaker settings do not matter.
pub(super) fn keeps_cache(old: &Definition, new: &Definition, kept: &BTreeSet<String>) -> bool {
    old.sources.len() == new.sources.len()
        && old.sources.iter().zip(new.sources.iter()).all(|(was, is)| {
            was.backend_name == is.backend_name
                && kept.contains(&*is.backend_name)
                && was.secret == is.secret
        })
        && old.fallback_on == new.fallback_on
        && old.trim == new.trim
        && old.policy == new.policy
}
