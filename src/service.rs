//! The `vaultbridge.v1.Secrets` gRPC service.

use crate::access::{Guard, Target};
use crate::metrics::{Metrics, ServiceMeter};
use crate::proto::v1::{self as pb, secrets_server::Secrets};
use crate::reload::Live;
use crate::resolver::{CacheOutcome, Change, Definition, Freshness, Resolved, Resolver};
use crate::status::{RequestError, code_and_message};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// Most names one `ResolveBatch` may ask for.
pub(crate) const MAX_BATCH: usize = 256;

#[derive(Debug, Clone)]
pub(crate) struct SecretsService {
    /// The definitions and access rules being served: each call loads them once.
    live: Arc<Live>,
    /// Becomes true when the daemon shuts down, to end watch streams.
    stopping: tokio::sync::watch::Receiver<bool>,
    meter: ServiceMeter,
}

/// The service's methods, as counted in the metrics; indices into its [`ServiceMeter`].
mod rpc {
    pub(super) const METHODS: [&str; 5] = [
        "Resolve",
        "ResolveBatch",
        "ListDefinitions",
        "Invalidate",
        "Watch",
    ];
    pub(super) const RESOLVE: usize = 0;
    pub(super) const RESOLVE_BATCH: usize = 1;
    pub(super) const LIST_DEFINITIONS: usize = 2;
    pub(super) const INVALIDATE: usize = 3;
    pub(super) const WATCH: usize = 4;
}

impl SecretsService {
    pub(crate) fn new(live: Arc<Live>, stopping: tokio::sync::watch::Receiver<bool>) -> Self {
        Self {
            live,
            stopping,
            meter: ServiceMeter::default(),
        }
    }

    /// Counts calls into `metrics`.
    pub(crate) fn metered(mut self, metrics: &Metrics) -> Self {
        self.meter = metrics.service(crate::server::SECRETS_SERVICE, &rpc::METHODS);
        self
    }
}

/// `name` is the requested name, moved in rather than copied from the definition (the
/// lookup is exact, so they are equal).
fn to_proto(resolved: &Resolved, name: String) -> pb::Secret {
    let secret = &resolved.secret;
    let value = secret.value.expose();
    pb::Secret {
        name,
        value: value.to_vec(),
        text: secret.value.expose_str().map(str::to_owned),
        backend: resolved.source().backend_name.to_string(),
        source: u32::try_from(secret.source).unwrap_or(u32::MAX),
        version_id: secret.version.clone(),
        fetched_at: Some(prost_types::Timestamp::from(secret.fetched_at)),
        cache: match resolved.cache {
            CacheOutcome::Hit => pb::CacheOutcome::Hit,
            CacheOutcome::Miss => pb::CacheOutcome::Miss,
            CacheOutcome::Stale => pb::CacheOutcome::Stale,
        } as i32,
        stale: resolved.cache == CacheOutcome::Stale,
        age: prost_types::Duration::try_from(resolved.age).ok(),
        stale_reason: resolved.stale_reason.as_ref().map(ToString::to_string),
        trimmed: secret.trimmed,
        metadata: secret
            .metadata
            .iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect::<HashMap<_, _>>(),
    }
}

/// A request's freshness, checked.
fn freshness(request: &pb::ResolveRequest) -> Result<Freshness, Status> {
    let max_age = match request.max_age {
        None => None,
        Some(max_age) => {
            Some(std::time::Duration::try_from(max_age).map_err(|_| RequestError::NegativeMaxAge)?)
        }
    };
    Ok(Freshness {
        max_age,
        refresh: request.refresh,
    })
}

type WatchStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;

/// How often a watch keeps its definitions fresh and looks for changed files: well
/// within a file backend's default change_check_interval (1 s).
const WATCH_TICK: std::time::Duration = std::time::Duration::from_millis(250);

fn event(
    name: &str,
    kind: pb::WatchEventKind,
    version: Option<String>,
    fetched_at: Option<std::time::SystemTime>,
) -> pb::WatchEvent {
    pb::WatchEvent {
        name: name.to_owned(),
        kind: kind as i32,
        version_id: version,
        fetched_at: fetched_at.map(prost_types::Timestamp::from),
        message: String::new(),
    }
}

/// What one watch stream holds between events.
struct Watching {
    /// The resolver of the config being served; replaced when a reload is applied.
    resolver: Arc<Resolver>,
    live: Arc<Live>,
    generations: tokio::sync::watch::Receiver<u64>,
    definitions: Vec<Arc<Definition>>,
    names: HashSet<Arc<str>>,
    changes: tokio::sync::broadcast::Receiver<Change>,
    tick: tokio::time::Interval,
    stopping: tokio::sync::watch::Receiver<bool>,
    pending: std::collections::VecDeque<pb::WatchEvent>,
}

impl Watching {
    async fn next(mut self) -> Option<(Result<pb::WatchEvent, Status>, Self)> {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some((Ok(event), self));
            }
            if self.definitions.is_empty() {
                return None;
            }
            enum Woke {
                Stopping,
                Tick,
                Reloaded,
                Change(Result<Change, RecvError>),
            }
            let woke = tokio::select! {
                _ = self.stopping.wait_for(|stop| *stop) => Woke::Stopping,
                Ok(()) = self.generations.changed() => Woke::Reloaded,
                _ = self.tick.tick() => Woke::Tick,
                change = self.changes.recv() => Woke::Change(change),
            };
            match woke {
                Woke::Stopping | Woke::Change(Err(RecvError::Closed)) => return None,
                Woke::Tick => self.resolver.keep_fresh(&self.definitions).await,
                Woke::Reloaded => self.follow_reload(),
                Woke::Change(Ok(change)) => {
                    if self.names.contains(&change.name) {
                        let changed = event(
                            &change.name,
                            pb::WatchEventKind::Changed,
                            change.version,
                            Some(change.fetched_at),
                        );
                        return Some((Ok(changed), self));
                    }
                }
                // Too far behind to know which changed: say all may have.
                Woke::Change(Err(RecvError::Lagged(_))) => {
                    for definition in &self.definitions {
                        self.pending.push_back(event(
                            &definition.name,
                            pb::WatchEventKind::Changed,
                            None,
                            None,
                        ));
                    }
                }
            }
        }
    }
}

impl Watching {
    /// Moves the watch to the reloaded config: a definition changed there is watched as
    /// it is now defined (the cache's change events say when its value differs), and
    /// one removed gets an `ERROR` event and is watched no more. The stream ends when
    /// none is left.
    fn follow_reload(&mut self) {
        let runtime = self.live.load();
        self.resolver = runtime.resolver.clone();
        let mut watched = Vec::with_capacity(self.definitions.len());
        for definition in std::mem::take(&mut self.definitions) {
            match self.resolver.definition(&definition.name) {
                Ok(current) => watched.push(current.clone()),
                Err(err) => {
                    self.names.remove(&definition.name);
                    self.pending.push_back(pb::WatchEvent {
                        message: code_and_message(&err).1,
                        ..event(&definition.name, pb::WatchEventKind::Error, None, None)
                    });
                }
            }
        }
        self.definitions = watched;
    }
}

/// The calls themselves; the trait's methods count them (see [`crate::metrics`]).
impl SecretsService {
    async fn resolve_call(
        &self,
        request: Request<pb::ResolveRequest>,
    ) -> Result<Response<pb::ResolveResponse>, Status> {
        let runtime = self.live.load();
        let guard = Guard::of(runtime.access.as_ref(), &request, "Resolve")?;
        let request = request.into_inner();
        let freshness = freshness(&request)?;
        let name = request.name;
        if let Some(guard) = &guard {
            guard.check("Resolve", Target::Definition(&name))?;
        }
        let result = runtime.resolver.resolve_with(&name, freshness).await;
        if let Some(guard) = &guard {
            guard.resolved("Resolve", &name, result.as_ref());
        }
        let resolved = result?;
        Ok(Response::new(pb::ResolveResponse {
            secret: Some(to_proto(&resolved, name)),
        }))
    }

    async fn resolve_batch_call(
        &self,
        request: Request<pb::ResolveBatchRequest>,
    ) -> Result<Response<pb::ResolveBatchResponse>, Status> {
        let runtime = self.live.load();
        let guard = Guard::of(runtime.access.as_ref(), &request, "ResolveBatch")?;
        let request = request.into_inner();
        let requests: Vec<(String, Freshness)> =
            match (request.names.is_empty(), request.items.is_empty()) {
                (_, true) => request
                    .names
                    .into_iter()
                    .map(|name| (name, Freshness::default()))
                    .collect(),
                (true, false) => request
                    .items
                    .into_iter()
                    .map(|item| Ok((freshness(&item)?, item.name)))
                    .map(|item: Result<_, Status>| item.map(|(freshness, name)| (name, freshness)))
                    .collect::<Result<_, Status>>()?,
                (false, false) => return Err(RequestError::NamesAndItems.into()),
            };
        if requests.len() > MAX_BATCH {
            return Err(RequestError::BatchTooLarge {
                size: requests.len(),
                max: MAX_BATCH,
            }
            .into());
        }
        let allowed: Vec<bool> = requests
            .iter()
            .map(|(name, _)| guard.as_ref().is_none_or(|guard| guard.may_read(name)))
            .collect();
        // Duplicate names coalesce in the resolver's single-flight.
        let resolved = if allowed.iter().all(|allowed| *allowed) {
            runtime.resolver.resolve_many(&requests).await
        } else {
            let permitted: Vec<(String, Freshness)> = requests
                .iter()
                .zip(&allowed)
                .filter(|(_, allowed)| **allowed)
                .map(|(request, _)| request.clone())
                .collect();
            runtime.resolver.resolve_many(&permitted).await
        };
        let mut resolved = resolved.into_iter();
        let error = |code: tonic::Code, message: String| {
            pb::resolve_result::Outcome::Error(pb::ResolveError {
                code: code as i32,
                message,
            })
        };
        let results = requests
            .into_iter()
            .zip(allowed)
            .map(|((name, _), allowed)| {
                let outcome = match (allowed, guard.as_ref()) {
                    (false, Some(guard)) => {
                        let status = guard.deny("ResolveBatch", Target::Definition(&name));
                        error(status.code(), status.message().to_owned())
                    }
                    _ => match resolved.next() {
                        Some(result) => {
                            if let Some(guard) = &guard {
                                guard.resolved("ResolveBatch", &name, result.as_ref());
                            }
                            match result {
                                Ok(resolved) => pb::resolve_result::Outcome::Secret(to_proto(
                                    &resolved,
                                    name.clone(),
                                )),
                                Err(err) => {
                                    let (code, message) = code_and_message(&err);
                                    error(code, message)
                                }
                            }
                        }
                        // The resolver answers each request it is given, in order.
                        None => error(tonic::Code::Internal, "internal error".to_owned()),
                    },
                };
                pb::ResolveResult {
                    name,
                    outcome: Some(outcome),
                }
            })
            .collect();
        Ok(Response::new(pb::ResolveBatchResponse { results }))
    }

    async fn list_definitions_call(
        &self,
        request: Request<pb::ListDefinitionsRequest>,
    ) -> Result<Response<pb::ListDefinitionsResponse>, Status> {
        let runtime = self.live.load();
        let guard = Guard::of(runtime.access.as_ref(), &request, "ListDefinitions")?;
        let definitions = runtime
            .resolver
            .definitions()
            .iter()
            .filter(|definition| {
                guard
                    .as_ref()
                    .is_none_or(|guard| guard.may_read(&definition.name))
            })
            .map(|definition| {
                let first = definition.sources.first();
                pb::Definition {
                    name: definition.name.to_string(),
                    backend: first.backend_name.to_string(),
                    backend_type: first.backend.kind().to_owned(),
                    description: definition.description.clone(),
                    trim: if definition.trim {
                        pb::TrimPolicy::Trim
                    } else {
                        pb::TrimPolicy::None
                    } as i32,
                    secret: first.secret.id.clone(),
                    key: first.secret.key.clone(),
                    ttl_seconds: definition.policy.ttl.as_secs(),
                    sources: definition
                        .sources
                        .iter()
                        .map(|source| pb::DefinitionSource {
                            backend: source.backend_name.to_string(),
                            backend_type: source.backend.kind().to_owned(),
                            secret: source.secret.id.clone(),
                            key: source.secret.key.clone(),
                        })
                        .collect(),
                }
            })
            .collect();
        Ok(Response::new(pb::ListDefinitionsResponse { definitions }))
    }

    async fn invalidate_call(
        &self,
        request: Request<pb::InvalidateRequest>,
    ) -> Result<Response<pb::InvalidateResponse>, Status> {
        let runtime = self.live.load();
        let guard = Guard::of(runtime.access.as_ref(), &request, "Invalidate")?;
        match request.into_inner().target {
            Some(pb::invalidate_request::Target::Name(name)) => {
                if let Some(guard) = &guard {
                    guard.check("Invalidate", Target::Definition(&name))?;
                }
                runtime.resolver.invalidate(&name).await?;
                if let Some(guard) = &guard {
                    guard.record(
                        "Invalidate",
                        Target::Definition(&name),
                        tonic::Code::Ok,
                        None,
                    );
                }
                tracing::info!(definition = %name, "cache entry invalidated");
            }
            Some(pb::invalidate_request::Target::All(true)) => match &guard {
                // A caller limited to some definitions drops only those.
                Some(guard) if !guard.reads_everything() => {
                    for definition in runtime.resolver.definitions() {
                        if guard.may_read(&definition.name) {
                            runtime.resolver.invalidate(&definition.name).await?;
                        }
                    }
                    guard.record("Invalidate", Target::AllDefinitions, tonic::Code::Ok, None);
                    tracing::info!("the caller's cache entries invalidated");
                }
                _ => {
                    runtime.resolver.invalidate_all();
                    if let Some(guard) = &guard {
                        guard.record("Invalidate", Target::AllDefinitions, tonic::Code::Ok, None);
                    }
                    tracing::info!("all cache entries invalidated");
                }
            },
            Some(pb::invalidate_request::Target::All(false)) => {
                return Err(RequestError::InvalidateAllFalse.into());
            }
            None => return Err(RequestError::NoInvalidateTarget.into()),
        }
        Ok(Response::new(pb::InvalidateResponse {}))
    }

    async fn watch_call(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let runtime = self.live.load();
        let guard = Guard::of(runtime.access.as_ref(), &request, "Watch")?;
        let names = request.into_inner().names;
        if let Some(guard) = &guard {
            for name in &names {
                guard.check("Watch", Target::Definition(name))?;
            }
        }
        if names.is_empty() {
            return Err(RequestError::NothingToWatch.into());
        }
        if names.len() > MAX_BATCH {
            return Err(RequestError::BatchTooLarge {
                size: names.len(),
                max: MAX_BATCH,
            }
            .into());
        }
        let mut definitions: Vec<Arc<Definition>> = Vec::with_capacity(names.len());
        for name in &names {
            let definition = runtime.resolver.definition(name)?;
            if !definitions.iter().any(|seen| seen.name == definition.name) {
                definitions.push(definition.clone());
            }
        }
        // Subscribe before the first reads, so no change falls between the two.
        let changes = runtime.resolver.subscribe();
        // Seen as changed: a reload between this call's load of the runtime and now
        // must not go unnoticed, and following one that did not happen costs a lookup.
        let mut generations = self.live.subscribe();
        generations.mark_changed();
        let requests: Vec<(String, Freshness)> = definitions
            .iter()
            .map(|definition| (definition.name.to_string(), Freshness::default()))
            .collect();
        let current = runtime.resolver.resolve_many(&requests).await;
        let pending = definitions
            .iter()
            .zip(current)
            .map(|(definition, result)| match result {
                Ok(resolved) => event(
                    &definition.name,
                    pb::WatchEventKind::Current,
                    resolved.secret.version.clone(),
                    Some(resolved.secret.fetched_at),
                ),
                Err(err) => pb::WatchEvent {
                    message: code_and_message(&err).1,
                    ..event(&definition.name, pb::WatchEventKind::Error, None, None)
                },
            })
            .collect();
        let mut tick = tokio::time::interval(WATCH_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let watching = Watching {
            resolver: runtime.resolver.clone(),
            live: self.live.clone(),
            generations,
            names: definitions.iter().map(|d| d.name.clone()).collect(),
            definitions,
            changes,
            tick,
            stopping: self.stopping.clone(),
            pending,
        };
        let stream = futures_util::stream::unfold(watching, Watching::next);
        Ok(Response::new(Box::pin(stream)))
    }
}

#[tonic::async_trait]
impl Secrets for SecretsService {
    type WatchStream = WatchStream;

    async fn resolve(
        &self,
        request: Request<pb::ResolveRequest>,
    ) -> Result<Response<pb::ResolveResponse>, Status> {
        self.meter
            .observe(rpc::RESOLVE, self.resolve_call(request))
            .await
    }

    async fn resolve_batch(
        &self,
        request: Request<pb::ResolveBatchRequest>,
    ) -> Result<Response<pb::ResolveBatchResponse>, Status> {
        self.meter
            .observe(rpc::RESOLVE_BATCH, self.resolve_batch_call(request))
            .await
    }

    async fn list_definitions(
        &self,
        request: Request<pb::ListDefinitionsRequest>,
    ) -> Result<Response<pb::ListDefinitionsResponse>, Status> {
        self.meter
            .observe(rpc::LIST_DEFINITIONS, self.list_definitions_call(request))
            .await
    }

    async fn invalidate(
        &self,
        request: Request<pb::InvalidateRequest>,
    ) -> Result<Response<pb::InvalidateResponse>, Status> {
        self.meter
            .observe(rpc::INVALIDATE, self.invalidate_call(request))
            .await
    }

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.meter
            .observe(rpc::WATCH, self.watch_call(request))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolver::Definition;
    use async_trait::async_trait;
    use std::time::Duration;
    use tokio::sync::Barrier;
    use vaultbridge_backend_core::{
        Backend, BackendError, Capabilities, Fetched, SecretRef, SecretValue,
    };

    /// Answers only once `parties` fetches are waiting at the same time, so a batch
    /// resolved one name after another would never finish.
    #[derive(Debug)]
    struct RendezvousBackend {
        barrier: Barrier,
    }

    #[async_trait]
    impl Backend for RendezvousBackend {
        fn kind(&self) -> &'static str {
            "rendezvous"
        }

        fn capabilities(&self) -> Capabilities {
            Capabilities::text_only()
        }

        async fn fetch(&self, secret: &SecretRef) -> Result<Fetched, BackendError> {
            self.barrier.wait().await;
            Ok(Fetched::new(SecretValue::from(secret.id.as_str())))
        }
    }

    #[tokio::test]
    async fn a_batch_resolves_its_names_concurrently() {
        let backend = Arc::new(RendezvousBackend {
            barrier: Barrier::new(3),
        });
        let definitions = ["a", "b", "c"].map(|name| {
            Arc::new(Definition {
                name: Arc::from(name),
                sources: crate::resolver::Sources::one(crate::resolver::Source {
                    backend_name: "r".into(),
                    backend: backend.clone(),
                    secret: SecretRef::new(name),
                    meter: Default::default(),
                }),
                fallback_on: Default::default(),
                policy: crate::config::CachePolicy::ttl_only(Duration::from_secs(60)),
                trim: true,
                description: String::new(),
                meter: Default::default(),
                hot: Default::default(),
            })
        });
        let (_stop, stopping) = tokio::sync::watch::channel(false);
        let resolver = Arc::new(Resolver::from_definitions(definitions, 10));
        let jira = crate::jira::JiraService::new(
            std::collections::BTreeMap::new(),
            Duration::ZERO,
            1,
            resolver.clone(),
        );
        let live = Live::new(crate::reload::Runtime {
            resolver,
            jira: Arc::new(jira),
            access: None,
        });
        let service = SecretsService::new(live, stopping);
        let request = Request::new(pb::ResolveBatchRequest {
            names: vec!["a".into(), "b".into(), "c".into()],
            ..Default::default()
        });
        // The timeout only turns a deadlock (sequential resolution) into a failure.
        let response =
            tokio::time::timeout(Duration::from_secs(30), service.resolve_batch(request))
                .await
                .expect("the three fetches met, so they ran concurrently")
                .unwrap()
                .into_inner();
        let values: Vec<Vec<u8>> = response
            .results
            .into_iter()
            .map(|result| match result.outcome {
                Some(pb::resolve_result::Outcome::Secret(mut secret)) => {
                    std::mem::take(&mut secret.value)
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(values, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    }
}
