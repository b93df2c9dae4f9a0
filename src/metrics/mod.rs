//! Prometheus metrics (`server.metrics`), on the Prometheus project's `prometheus-client`.
//!
//! The hot path (a cache hit) pays for atomics only: every label set a request can
//! touch is resolved into a handle (an `Arc` around an atomic) when the daemon starts
//! or on its first use, so no request hashes a label set, and with metrics off every
//! handle is `None` and costs a branch. No label takes its value from a request: RPC
//! names, codes, outcomes, backends and connections come from the code or the config,
//! and a definition's name is a label only with `per_definition: true`.

mod collect;
mod http;

pub(crate) use collect::{CacheCollector, JiraCollector};
pub(crate) use http::{bind, serve};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use vaultbridge_backend_core::{BackendError, ErrorKind};

/// A label set; built only at start-up or on a handle's first use.
type Labels = Vec<(&'static str, String)>;

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(key, value)| (*key, (*value).to_owned()))
        .collect()
}

/// Latency buckets from 1 ms to about 33 s: a local file answers in the first, a
/// throttled cloud call retried with backoff in the last.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The families, shared by every handle made from them.
#[derive(Debug)]
struct Families {
    per_definition: bool,
    requests: Family<Labels, Counter>,
    requests_in_flight: Family<Labels, Gauge>,
    resolves: Family<Labels, Counter>,
    refreshes_ahead: Family<Labels, Counter>,
    /// Without `per_definition`, one counter (a family of one would print `{}`).
    refreshes_ahead_all: Counter,
    backend_calls: Family<Labels, Counter>,
    backend_duration: Family<Labels, Histogram, fn() -> Histogram>,
    backend_in_flight: Family<Labels, Gauge>,
    breaker_state: Family<Labels, Gauge>,
    breaker_rejections: Family<Labels, Counter>,
    reloads: Family<Labels, Counter>,
    fallbacks: Family<Labels, Counter>,
    /// Shared by every definition when `per_definition` is off.
    all_definitions: OnceLock<DefinitionMeter>,
}

/// Where handles come from. Cloning is cheap; a daemon without `server.metrics` has none.
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    families: Arc<Families>,
}

/// How a config reload ended: applied, or rejected (the previous config kept).
const RELOAD_OUTCOMES: [&str; 2] = ["success", "failure"];

impl Metrics {
    /// The handles' source and the registry to serve, with every family registered.
    pub(crate) fn new(per_definition: bool) -> (Self, Registry) {
        let mut registry = Registry::with_prefix("vaultbridge");
        let families = Families {
            per_definition,
            requests: Family::default(),
            requests_in_flight: Family::default(),
            resolves: Family::default(),
            refreshes_ahead: Family::default(),
            refreshes_ahead_all: Counter::default(),
            backend_calls: Family::default(),
            backend_duration: Family::new_with_constructor(duration_histogram),
            backend_in_flight: Family::default(),
            breaker_state: Family::default(),
            breaker_rejections: Family::default(),
            reloads: Family::default(),
            fallbacks: Family::default(),
            all_definitions: OnceLock::new(),
        };
        let build_info: Family<Labels, Gauge> = Family::default();
        build_info
            .get_or_create(&labels(&[("version", env!("CARGO_PKG_VERSION"))]))
            .set(1);
        registry.register(
            "build_info",
            "Always 1; the labels say which vaultbridge this is",
            build_info,
        );
        registry.register(
            "grpc_requests",
            "gRPC calls answered, by service, method and gRPC status code (CANCELLED: the caller went away or its deadline passed)",
            families.requests.clone(),
        );
        registry.register(
            "grpc_requests_in_flight",
            "gRPC calls being answered now, by service and method (a watch stream counts until its first answer)",
            families.requests_in_flight.clone(),
        );
        registry.register(
            "resolves",
            "Definitions resolved, by what the cache did: hit, miss (waited for a backend call, its own or a shared one), stale (the backend failed for a temporary reason; the last good value was served), negative (a remembered not-found)",
            families.resolves.clone(),
        );
        let refreshes_help =
            "Background refreshes asked for by a read past an entry's refresh point";
        if per_definition {
            registry.register(
                "refreshes_ahead",
                refreshes_help,
                families.refreshes_ahead.clone(),
            );
        } else {
            registry.register(
                "refreshes_ahead",
                refreshes_help,
                families.refreshes_ahead_all.clone(),
            );
        }
        registry.register(
            "backend_calls",
            "Calls made to a backend, by backend, operation (fetch, fetch_many) and outcome (ok, or the error's kind)",
            families.backend_calls.clone(),
        );
        registry.register_with_unit(
            "backend_call_duration",
            "How long backend calls took, by backend and operation",
            Unit::Seconds,
            families.backend_duration.clone(),
        );
        registry.register(
            "backend_calls_in_flight",
            "Backend calls under way now, by backend",
            families.backend_in_flight.clone(),
        );
        registry.register(
            "backend_breaker_state",
            "1 for the circuit breaker's current state (closed, open, half_open), 0 for the others; open lasts until the next call after the cool-down",
            families.breaker_state.clone(),
        );
        registry.register(
            "backend_breaker_rejections",
            "Calls not made because the backend's circuit breaker was open",
            families.breaker_rejections.clone(),
        );
        registry.register(
            "fallbacks",
            "Backend reads whose failure let a definition's next source answer, by the backend passed over and why (the error's kind)",
            families.fallbacks.clone(),
        );
        for outcome in RELOAD_OUTCOMES {
            drop(
                families
                    .reloads
                    .get_or_create(&labels(&[("outcome", outcome)])),
            );
        }
        registry.register(
            "config_reloads",
            "Config reloads, by outcome: success (applied), failure (rejected; the previous config is still served)",
            families.reloads.clone(),
        );
        (
            Self {
                families: Arc::new(families),
            },
            registry,
        )
    }

    /// The handles of one gRPC service's methods, in the order given.
    pub(crate) fn service(&self, service: &'static str, methods: &[&'static str]) -> ServiceMeter {
        let rpcs = methods
            .iter()
            .map(|method| {
                let base = labels(&[("service", service), ("method", method)]);
                RpcMeter {
                    in_flight: self.families.requests_in_flight.get_or_create_owned(&base),
                    codes: LazyCounters::new(self.families.requests.clone(), base),
                }
            })
            .collect();
        ServiceMeter { rpcs }
    }

    /// A definition's handles: its own with `per_definition`, otherwise shared by all.
    pub(crate) fn definition(&self, name: &str) -> DefinitionMeter {
        let families = &self.families;
        let make = |extra: &[(&'static str, &str)]| {
            let counter = |cache: &str| {
                let mut set = labels(&[("cache", cache)]);
                set.extend(labels(extra));
                families.resolves.get_or_create_owned(&set)
            };
            DefinitionMeter(Some(Arc::new(ResolveCounters {
                hit: counter("hit"),
                miss: counter("miss"),
                stale: counter("stale"),
                negative: counter("negative"),
                refresh_ahead: if families.per_definition {
                    families.refreshes_ahead.get_or_create_owned(&labels(extra))
                } else {
                    families.refreshes_ahead_all.clone()
                },
            })))
        };
        if families.per_definition {
            make(&[("definition", name)])
        } else {
            families.all_definitions.get_or_init(|| make(&[])).clone()
        }
    }

    /// The reload counters.
    pub(crate) fn reloads(&self) -> ReloadMeter {
        let [success, failure] = RELOAD_OUTCOMES.map(|outcome| {
            self.families
                .reloads
                .get_or_create_owned(&labels(&[("outcome", outcome)]))
        });
        ReloadMeter(Some(Arc::new((success, failure))))
    }

    /// A backend's handles, made once per backend at start-up.
    pub(crate) fn backend(&self, name: &str) -> BackendMeter {
        let families = &self.families;
        let operation = |operation: &str| CallMeter {
            duration: families
                .backend_duration
                .get_or_create_owned(&labels(&[("backend", name), ("operation", operation)])),
            outcomes: LazyCounters::new(
                families.backend_calls.clone(),
                labels(&[("backend", name), ("operation", operation)]),
            ),
        };
        let breaker = BREAKER_STATES.map(|state| {
            families
                .breaker_state
                .get_or_create_owned(&labels(&[("backend", name), ("state", state)]))
        });
        breaker[0].set(1);
        BackendMeter(Some(Arc::new(BackendCounters {
            in_flight: families
                .backend_in_flight
                .get_or_create_owned(&labels(&[("backend", name)])),
            fetch: operation("fetch"),
            fetch_many: operation("fetch_many"),
            breaker,
            rejections: families
                .breaker_rejections
                .get_or_create_owned(&labels(&[("backend", name)])),
            fallbacks: LazyCounters::new(families.fallbacks.clone(), labels(&[("backend", name)])),
        })))
    }
}

/// Counters of one family told apart by one more label, whose values are known in
/// advance (gRPC codes, outcomes); each is made on first use, so that codes never seen
/// make no series, and found by index afterwards, without hashing.
#[derive(Debug)]
struct LazyCounters<const N: usize> {
    family: Family<Labels, Counter>,
    base: Labels,
    counters: [OnceLock<Counter>; N],
}

impl<const N: usize> LazyCounters<N> {
    fn new(family: Family<Labels, Counter>, base: Labels) -> Self {
        Self {
            family,
            base,
            counters: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    fn inc(&self, index: usize, key: &'static str, value: &str) {
        if let Some(slot) = self.counters.get(index) {
            slot.get_or_init(|| {
                let mut set = self.base.clone();
                set.push((key, value.to_owned()));
                self.family.get_or_create_owned(&set)
            })
            .inc();
        }
    }
}

/// gRPC's 17 status codes.
const GRPC_CODES: usize = 17;

#[derive(Debug)]
struct RpcMeter {
    in_flight: Gauge,
    codes: LazyCounters<GRPC_CODES>,
}

/// One service's methods; empty when metrics are off.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServiceMeter {
    rpcs: Arc<[RpcMeter]>,
}

impl ServiceMeter {
    /// Runs one call of method `rpc` (its index in [`Metrics::service`]'s list),
    /// counting it in flight while it runs and by its code when it ends. A call dropped
    /// before it ends (the caller went away, or its deadline passed) counts as
    /// CANCELLED, the code such a caller sees.
    pub(crate) async fn observe<T>(
        &self,
        rpc: usize,
        call: impl Future<Output = Result<T, tonic::Status>>,
    ) -> Result<T, tonic::Status> {
        let Some(mut guard) = self.start(rpc) else {
            return call.await;
        };
        let result = call.await;
        guard.ended(&result);
        result
    }

    /// What [`Self::observe`] does, for a caller that awaits the call itself (one
    /// future fewer to build and move per request): the call is in flight until the
    /// guard drops, and counts by the code given to [`RpcGuard::ended`], CANCELLED
    /// without one. `None` when metrics are off.
    pub(crate) fn start(&self, rpc: usize) -> Option<RpcGuard<'_>> {
        let meter = self.rpcs.get(rpc)?;
        meter.in_flight.inc();
        Some(RpcGuard {
            meter,
            code: tonic::Code::Cancelled,
        })
    }
}

/// One call in flight; see [`ServiceMeter::start`].
pub(crate) struct RpcGuard<'a> {
    meter: &'a RpcMeter,
    code: tonic::Code,
}

impl RpcGuard<'_> {
    pub(crate) fn ended<T>(&mut self, result: &Result<T, tonic::Status>) {
        self.ended_with(match result {
            Ok(_) => tonic::Code::Ok,
            Err(status) => status.code(),
        });
    }

    pub(crate) fn ended_with(&mut self, code: tonic::Code) {
        self.code = code;
    }
}

impl Drop for RpcGuard<'_> {
    fn drop(&mut self) {
        self.meter.in_flight.dec();
        let code = self.code;
        self.meter
            .codes
            .inc(code as usize, "code", crate::status::code_name(code));
    }
}

#[derive(Debug)]
struct ResolveCounters {
    hit: Counter,
    miss: Counter,
    stale: Counter,
    negative: Counter,
    refresh_ahead: Counter,
}

/// Config reloads applied and rejected; `None` when metrics are off.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReloadMeter(Option<Arc<(Counter, Counter)>>);

impl ReloadMeter {
    pub(crate) fn success(&self) {
        if let Some(counters) = &self.0 {
            counters.0.inc();
        }
    }

    pub(crate) fn failure(&self) {
        if let Some(counters) = &self.0 {
            counters.1.inc();
        }
    }
}

/// A definition's resolve counters; `None` when metrics are off.
#[derive(Debug, Clone, Default)]
pub(crate) struct DefinitionMeter(Option<Arc<ResolveCounters>>);

impl DefinitionMeter {
    pub(crate) fn hit(&self) {
        if let Some(counters) = &self.0 {
            counters.hit.inc();
        }
    }

    pub(crate) fn miss(&self) {
        if let Some(counters) = &self.0 {
            counters.miss.inc();
        }
    }

    pub(crate) fn stale(&self) {
        if let Some(counters) = &self.0 {
            counters.stale.inc();
        }
    }

    pub(crate) fn negative(&self) {
        if let Some(counters) = &self.0 {
            counters.negative.inc();
        }
    }

    pub(crate) fn refresh_ahead(&self) {
        if let Some(counters) = &self.0 {
            counters.refresh_ahead.inc();
        }
    }
}

/// The breaker's states, in the order of [`BackendMeter::breaker`]'s index.
const BREAKER_STATES: [&str; 3] = ["closed", "open", "half_open"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BreakerState {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Fetch,
    FetchMany,
}

/// `ok`, then every error kind.
const OUTCOMES: usize = 8;

fn outcome(result: Result<(), &BackendError>) -> (usize, &'static str) {
    match result {
        Ok(()) => (0, "ok"),
        Err(err) => match err.kind() {
            ErrorKind::NotFound => (1, "not_found"),
            ErrorKind::KeyNotFound => (2, "key_not_found"),
            ErrorKind::PermissionDenied => (3, "permission_denied"),
            ErrorKind::InvalidConfig => (4, "invalid_config"),
            ErrorKind::FailedPrecondition => (5, "failed_precondition"),
            ErrorKind::Unavailable => (6, "unavailable"),
            ErrorKind::Internal => (7, "internal"),
            // A kind added to the core crate later: counted with the bugs until named.
            _ => (7, "internal"),
        },
    }
}

#[derive(Debug)]
struct CallMeter {
    duration: Histogram,
    outcomes: LazyCounters<OUTCOMES>,
}

#[derive(Debug)]
struct BackendCounters {
    in_flight: Gauge,
    fetch: CallMeter,
    fetch_many: CallMeter,
    breaker: [Gauge; 3],
    rejections: Counter,
    fallbacks: LazyCounters<OUTCOMES>,
}

/// A backend's handles; `None` when metrics are off.
#[derive(Debug, Clone, Default)]
pub(crate) struct BackendMeter(Option<Arc<BackendCounters>>);

impl BackendMeter {
    /// Starts timing one call; [`BackendCall::end`] records it.
    pub(crate) fn call(&self, operation: Operation) -> BackendCall<'_> {
        if let Some(counters) = &self.0 {
            counters.in_flight.inc();
        }
        BackendCall {
            meter: self,
            operation,
            started: Instant::now(),
        }
    }

    pub(crate) fn breaker(&self, state: BreakerState) {
        if let Some(counters) = &self.0 {
            for (index, gauge) in counters.breaker.iter().enumerate() {
                gauge.set(i64::from(index == state as usize));
            }
        }
    }

    pub(crate) fn rejected(&self) {
        if let Some(counters) = &self.0 {
            counters.rejections.inc();
        }
    }

    /// A read of this backend failed with `err`, and a definition's next source was
    /// asked instead.
    pub(crate) fn fell_back(&self, err: &BackendError) {
        if let Some(counters) = &self.0 {
            let (index, name) = outcome(Err(err));
            counters.fallbacks.inc(index, "reason", name);
        }
    }
}

/// One backend call being timed; dropping it unended (the call was cancelled) only
/// takes it out of the in-flight gauge.
#[derive(Debug)]
pub(crate) struct BackendCall<'a> {
    meter: &'a BackendMeter,
    operation: Operation,
    started: Instant,
}

impl BackendCall<'_> {
    /// `result`: the call's outcome; for a batch, the first error of any item, or ok.
    pub(crate) fn end(self, result: Result<(), &BackendError>) {
        if let Some(counters) = &self.meter.0 {
            let call = match self.operation {
                Operation::Fetch => &counters.fetch,
                Operation::FetchMany => &counters.fetch_many,
            };
            call.duration.observe(self.started.elapsed().as_secs_f64());
            let (index, name) = outcome(result);
            call.outcomes.inc(index, "outcome", name);
        }
    }
}

impl Drop for BackendCall<'_> {
    fn drop(&mut self) {
        if let Some(counters) = &self.meter.0 {
            counters.in_flight.dec();
        }
    }
}

#[cfg(test)]
mod tests;
