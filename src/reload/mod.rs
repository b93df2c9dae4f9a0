//! Reloading the config without a restart: on SIGHUP, on `vaultbridge reload` (the
//! `Admin` service), and with `--watch-config` when the file changes.
//!
//! What a config defines at run time (definitions, backends, Jira connections, access
//! rules) lives in one [`Runtime`], swapped whole. Every request loads the current one
//! once and runs on it to the end, so a call in flight finishes on the config it started
//! with while new calls see the new one. Listeners and their limits are bound once; a
//! reload that changes them says they need a restart and leaves them alone.

mod diff;
mod watch;

pub(crate) use watch::watch_config;

use crate::access::{Access, AuditLog};
use crate::config::{Config, ConfigError, ProcessVars};
use crate::jira::JiraService;
use crate::metrics::{Metrics, ReloadMeter};
use crate::registry;
use crate::resolver::{Freshness, Generation, Resolver};
use crate::server::ServeError;
use arc_swap::ArcSwap;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch as channel;
use tokio::task::JoinHandle;

/// What one config defines at run time.
#[derive(Debug)]
pub(crate) struct Runtime {
    pub resolver: Arc<Resolver>,
    pub jira: Arc<JiraService>,
    /// The `clients` rules and audit trail, when configured.
    pub access: Option<Arc<Access>>,
}

/// The runtime being served.
#[derive(Debug)]
pub(crate) struct Live {
    current: ArcSwap<Runtime>,
    /// Counts swaps, for streams that outlive a reload and must follow it.
    generations: channel::Sender<u64>,
}

impl Live {
    pub(crate) fn new(runtime: Runtime) -> Arc<Self> {
        Arc::new(Self {
            current: ArcSwap::from_pointee(runtime),
            generations: channel::Sender::new(0),
        })
    }

    /// The runtime to answer one request with.
    pub(crate) fn load(&self) -> Arc<Runtime> {
        self.current.load_full()
    }

    /// Changes each time a reload is applied.
    pub(crate) fn subscribe(&self) -> channel::Receiver<u64> {
        self.generations.subscribe()
    }

    fn swap(&self, runtime: Runtime) -> u64 {
        self.current.store(Arc::new(runtime));
        let mut generation = 0;
        self.generations.send_modify(|counter| {
            *counter += 1;
            generation = *counter;
        });
        generation
    }
}

/// How a reload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Applied,
    /// The config is invalid or a backend could not be built: nothing changed.
    Rejected,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Summary {
    pub definitions_added: usize,
    pub definitions_removed: usize,
    pub definitions_changed: usize,
    pub definitions_kept: usize,
    pub backends_kept: usize,
    pub backends_built: usize,
    pub backends_removed: usize,
    pub generation: u64,
}

/// What a reload did, for the log and for `vaultbridge reload`.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub outcome: Outcome,
    /// Why it was rejected, one `file:line:col: path: message` each.
    pub problems: Vec<String>,
    /// Settings that need a restart, and the new config's own warnings.
    pub warnings: Vec<String>,
    pub summary: Summary,
}

impl Report {
    fn rejected(problems: Vec<String>) -> Self {
        Self {
            outcome: Outcome::Rejected,
            problems,
            warnings: Vec::new(),
            summary: Summary::default(),
        }
    }
}

/// The tasks that belong to one runtime (token-file watch, rate-limit upkeep), stopped
/// when a reload retires it or the daemon stops.
#[derive(Debug)]
struct Tasks {
    retire: Arc<channel::Sender<bool>>,
    handles: Vec<JoinHandle<()>>,
}

impl Tasks {
    fn spawn(access: Option<&Arc<Access>>, mut daemon_stop: channel::Receiver<bool>) -> Self {
        let (retire, stop) = channel::channel(false);
        let retire = Arc::new(retire);
        let forward = retire.clone();
        // The tasks end on either signal; this ends with them (`closed`).
        tokio::spawn(async move {
            tokio::select! {
                _ = daemon_stop.wait_for(|stop| *stop) => { let _ = forward.send(true); }
                () = forward.closed() => {}
            }
        });
        let handles = access
            .map(|access| {
                [
                    access.spawn_token_watch(stop.clone()),
                    access.spawn_limit_upkeep(stop),
                ]
                .into_iter()
                .flatten()
                .collect()
            })
            .unwrap_or_default();
        Self { retire, handles }
    }
}

/// What the last applied config left in place.
#[derive(Debug)]
struct Current {
    /// Without its definitions: the resolver holds those.
    config: Config,
    generation: Generation,
    tasks: Tasks,
}

/// Applies reloads, one at a time.
#[derive(Debug)]
pub(crate) struct Reloader {
    live: Arc<Live>,
    /// The config file; `None` for the embedded default, which cannot change.
    source: Option<PathBuf>,
    metrics: Option<Metrics>,
    meter: ReloadMeter,
    daemon_stop: channel::Receiver<bool>,
    current: tokio::sync::Mutex<Current>,
}

impl Reloader {
    /// Builds the runtime of the config the daemon starts with, and leaves `config`
    /// without its definitions: the resolver holds them.
    pub(crate) async fn start(
        config: &mut Config,
        source: Option<PathBuf>,
        metrics: Option<&Metrics>,
        daemon_stop: channel::Receiver<bool>,
    ) -> Result<Arc<Self>, ServeError> {
        let built = registry::build_all(&config.backends).await?;
        let generation = Generation::first(config, &built, metrics)?;
        let access = Access::new(&config.access, &ProcessVars)?;
        let jira = Arc::new(JiraService::new(
            config.jira.connections.clone(),
            config.jira.expiry_warning,
            config.jira.failure_threshold,
            generation.resolver.clone(),
        ));
        let tasks = Tasks::spawn(access.as_ref(), daemon_stop.clone());
        let live = Live::new(Runtime {
            resolver: generation.resolver.clone(),
            jira,
            access,
        });
        // The resolver holds its own copy of every definition; keeping the config's as
        // well costs about 330 bytes per definition for the daemon's whole life.
        config.definitions = BTreeMap::new();
        Ok(Arc::new(Self {
            live,
            source,
            metrics: metrics.cloned(),
            meter: metrics.map(Metrics::reloads).unwrap_or_default(),
            daemon_stop,
            current: tokio::sync::Mutex::new(Current {
                config: config.clone(),
                generation,
                tasks,
            }),
        }))
    }

    pub(crate) fn live(&self) -> &Arc<Live> {
        &self.live
    }

    /// Re-reads and checks the config and applies it, or keeps the running one and
    /// says why. `trigger` names what asked, for the log.
    pub(crate) async fn reload(&self, trigger: &str) -> Report {
        tracing::info!(trigger, "reloading the config");
        let mut current = self.current.lock().await;
        let report = match self.apply(&mut current).await {
            Ok(report) => report,
            Err(problems) => Report::rejected(problems),
        };
        match report.outcome {
            Outcome::Applied => {
                self.meter.success();
                for warning in &report.warnings {
                    tracing::warn!("{warning}");
                }
                let summary = &report.summary;
                tracing::info!(
                    trigger,
                    generation = summary.generation,
                    definitions_added = summary.definitions_added,
                    definitions_removed = summary.definitions_removed,
                    definitions_changed = summary.definitions_changed,
                    definitions_kept = summary.definitions_kept,
                    backends_kept = summary.backends_kept,
                    backends_built = summary.backends_built,
                    backends_removed = summary.backends_removed,
                    "config reloaded"
                );
            }
            Outcome::Rejected => {
                self.meter.failure();
                for problem in &report.problems {
                    tracing::error!(trigger, "config reload rejected: {problem}");
                }
                tracing::error!(
                    trigger,
                    problems = report.problems.len(),
                    "config reload rejected; still serving the previous config"
                );
            }
        }
        report
    }

    async fn apply(&self, current: &mut Current) -> Result<Report, Vec<String>> {
        let mut config =
            crate::cli::load_config(self.source.as_ref()).map_err(|err| match err {
                ConfigError::Invalid { .. } => err.to_string().lines().map(str::to_owned).collect(),
                ConfigError::Read { .. } => vec![err.to_string()],
            })?;
        if let Some(problem) = diff::unauthenticated_exposure(&current.config, &config) {
            return Err(vec![problem]);
        }
        let plan = diff::backends(&current.config.backends, &config.backends);
        let mut built: BTreeMap<String, Arc<dyn vaultbridge_backend_core::Backend>> =
            BTreeMap::new();
        for name in &plan.kept {
            if let Some(bound) = current.generation.backends.get(name) {
                built.insert(name.clone(), bound.raw.clone());
            }
        }
        for name in &plan.build {
            if let Some(backend) = config.backends.get(name) {
                let instance = backend.settings.build().await.map_err(|source| {
                    vec![
                        registry::BuildError {
                            backend: name.clone(),
                            kind: backend.kind,
                            source,
                        }
                        .to_string(),
                    ]
                })?;
                built.insert(name.clone(), instance);
            }
        }
        let (generation, definitions) = current
            .generation
            .next(&config, &built, &plan.kept, self.metrics.as_ref())
            .await
            .map_err(|err| vec![err.to_string()])?;
        let running = self.live.load();
        let audit = if config.access.audit == current.config.access.audit {
            running.access.as_ref().and_then(|access| access.audit())
        } else {
            AuditLog::start(&config.access.audit).map_err(|err| vec![err.to_string()])?
        };
        let access = Access::with_audit(&config.access, &ProcessVars, audit)
            .map_err(|err| vec![err.to_string()])?;
        let jira = Arc::new(running.jira.succeed(
            config.jira.connections.clone(),
            config.jira.expiry_warning,
            config.jira.failure_threshold,
            generation.resolver.clone(),
        ));
        if config.cache.warm_up {
            // Only what the reload left uncached: callers never wait for a backend
            // because of a reload.
            let cold: Vec<(String, Freshness)> = definitions
                .added
                .iter()
                .chain(&definitions.changed)
                .map(|name| (name.clone(), Freshness::default()))
                .collect();
            for result in generation.resolver.resolve_many(&cold).await {
                if let Err(err) = result {
                    tracing::warn!(error = %err, "warm-up after the reload could not resolve a definition");
                }
            }
        }
        let mut warnings = diff::needs_restart(&current.config, &config);
        warnings.extend(config.warnings.iter().cloned());
        let tasks = Tasks::spawn(access.as_ref(), self.daemon_stop.clone());
        let summary = Summary {
            definitions_added: definitions.added.len(),
            definitions_removed: definitions.removed.len(),
            definitions_changed: definitions.changed.len(),
            definitions_kept: definitions.kept.len(),
            backends_kept: plan.kept.len(),
            backends_built: plan.build.len(),
            backends_removed: plan.removed.len(),
            generation: self.live.swap(Runtime {
                resolver: generation.resolver.clone(),
                jira,
                access,
            }),
        };
        let retired = std::mem::replace(&mut current.tasks, tasks);
        let _ = retired.retire.send(true);
        // Listener settings stay as they are bound, so the next reload compares against
        // what runs, not what was asked for.
        config.server = current.config.server.clone();
        config.definitions = BTreeMap::new();
        current.config = config;
        current.generation = generation;
        Ok(Report {
            outcome: Outcome::Applied,
            problems: Vec::new(),
            warnings,
            summary,
        })
    }

    /// Asks every backend of the running config to stop (a plugin the daemon started
    /// gets SIGTERM and its grace period) and waits for them. Backends a reload retired
    /// stop when the last call that used them ends and drops them.
    pub(crate) async fn shut_down_backends(&self) {
        let current = self.current.lock().await;
        futures_util::future::join_all(
            current
                .generation
                .backends
                .values()
                .map(|bound| bound.raw.shutdown()),
        )
        .await;
    }

    /// Waits for the current runtime's tasks, once the daemon stops.
    pub(crate) async fn stopped(&self) {
        let mut current = self.current.lock().await;
        for handle in current.tasks.handles.drain(..) {
            let _ = handle.await;
        }
    }
}

#[cfg(test)]
mod tests;
