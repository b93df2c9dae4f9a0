use super::*;
use crate::config::CachePolicy;

/// Names with the default freshness, as a plain batch asks for them.
fn requests_of(names: &[String]) -> Vec<(String, Freshness)> {
    names
        .iter()
        .map(|name| (name.clone(), Freshness::default()))
        .collect()
}
use async_trait::async_trait;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;
use vaultbridge_backend_core::{Capabilities, ErrorKind, Fetched, SecretRef, SecretValue};

/// Shut until opened; once open, stays open. Holds a fake backend's fetch so that a
/// test, not a delay, decides when it answers.
#[derive(Debug)]
pub(super) struct Gate(tokio::sync::watch::Sender<bool>);

impl Default for Gate {
    fn default() -> Self {
        Self(tokio::sync::watch::Sender::new(false))
    }
}

impl Gate {
    pub(super) fn open(&self) {
        self.0.send_replace(true);
    }

    pub(super) fn close(&self) {
        self.0.send_replace(false);
    }

    async fn pass(&self) {
        // The sender lives in `self`, so the channel cannot close while waiting.
        let _ = self.0.subscribe().wait_for(|open| *open).await;
    }
}

/// Counts calls, can hold each fetch at a gate, and can be told to fail or to change
/// value.
#[derive(Debug, Default)]
pub(super) struct CountingBackend {
    calls: AtomicUsize,
    /// `None`: answer at once.
    pub(super) gate: Option<Gate>,
    /// Fail for a temporary reason (the backend is down).
    pub(super) fail: std::sync::atomic::AtomicBool,
    /// Answer that the secret does not exist (a permanent answer).
    pub(super) gone: std::sync::atomic::AtomicBool,
    /// Answer that the daemon's identity may not read the secret.
    pub(super) denied: std::sync::atomic::AtomicBool,
    revision: AtomicU64,
    pub(super) value: std::sync::Mutex<String>,
}

impl CountingBackend {
    pub(super) fn new(value: &str) -> Arc<Self> {
        Arc::new(Self {
            value: std::sync::Mutex::new(value.to_owned()),
            ..Self::default()
        })
    }

    /// Every fetch waits until `gate` is opened.
    pub(super) fn gated(value: &str) -> Arc<Self> {
        Arc::new(Self {
            gate: Some(Gate::default()),
            value: std::sync::Mutex::new(value.to_owned()),
            ..Self::default()
        })
    }

    pub(super) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Backend for CountingBackend {
    fn kind(&self) -> &'static str {
        "counting"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::text_only()
    }

    async fn fetch(&self, _secret: &SecretRef) -> Result<Fetched, BackendError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(gate) = &self.gate {
            gate.pass().await;
        }
        if self.fail.load(Ordering::SeqCst) {
            return Err(BackendError::unavailable("backend down"));
        }
        if self.gone.load(Ordering::SeqCst) {
            return Err(BackendError::not_found("no such secret"));
        }
        if self.denied.load(Ordering::SeqCst) {
            return Err(BackendError::permission_denied("access denied"));
        }
        let value = self.value.lock().expect("lock").clone();
        Ok(Fetched::new(SecretValue::from(value)).with_version("v1"))
    }

    fn revision(&self, _now: Instant) -> Option<u64> {
        Some(self.revision.load(Ordering::SeqCst))
    }
}

pub(super) fn definition(
    name: &str,
    backend: Arc<CountingBackend>,
    ttl: Duration,
    trim: bool,
) -> Arc<Definition> {
    Arc::new(Definition {
        name: Arc::from(name),
        sources: Sources::one(Source {
            backend_name: "counting".into(),
            backend,
            secret: SecretRef::new(name),
            meter: Default::default(),
        }),
        fallback_on: Default::default(),
        policy: CachePolicy::ttl_only(ttl),
        trim,
        description: String::new(),
        meter: Default::default(),
        hot: Default::default(),
    })
}

pub(super) fn resolver_with(backend: &Arc<CountingBackend>, ttl: Duration, trim: bool) -> Resolver {
    Resolver::from_definitions([definition("tok", backend.clone(), ttl, trim)], 100)
}

/// The fetch is held until every caller has started, so the callers really overlap: one
/// that arrived while it was held shares it (and reports a miss) rather than reading
/// a value already cached, which would make the count of one vacuous.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_misses_make_one_backend_call() {
    const CALLERS: usize = 1000;
    let backend = CountingBackend::gated("value");
    let resolver = Arc::new(resolver_with(&backend, Duration::from_secs(60), true));
    let started = Arc::new(AtomicUsize::new(0));
    let all_started = Arc::new(tokio::sync::Notify::new());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CALLERS {
        let resolver = resolver.clone();
        let started = started.clone();
        let all_started = all_started.clone();
        tasks.spawn(async move {
            if started.fetch_add(1, Ordering::SeqCst) + 1 == CALLERS {
                // `notify_one` keeps the wake-up if the test is not waiting yet.
                all_started.notify_one();
            }
            resolver.resolve("tok").await
        });
    }
    all_started.notified().await;
    backend.gate.as_ref().expect("gated").open();
    let (mut resolved, mut misses) = (0, 0);
    while let Some(result) = tasks.join_next().await {
        let result = result.expect("task").expect("resolves");
        assert_eq!(result.secret.value.expose(), b"value");
        resolved += 1;
        if result.cache == CacheOutcome::Miss {
            misses += 1;
        }
    }
    assert_eq!(resolved, CALLERS);
    assert_eq!(backend.calls(), 1);
    // A caller goes from counting itself to its cache lookup without yielding, so only
    // one preempted on each of the two workers can look after the fill.
    assert!(
        misses > CALLERS / 2,
        "only {misses} of {CALLERS} callers overlapped the held fetch"
    );
}

#[tokio::test]
async fn a_second_resolve_is_a_hit() {
    let backend = CountingBackend::new("value");
    let resolver = resolver_with(&backend, Duration::from_secs(60), true);
    assert_eq!(
        resolver.resolve("tok").await.unwrap().cache,
        CacheOutcome::Miss
    );
    let second = resolver.resolve("tok").await.unwrap();
    assert_eq!(second.cache, CacheOutcome::Hit);
    assert_eq!(second.secret.version.as_deref(), Some("v1"));
    assert_eq!(backend.calls(), 1);
}

#[tokio::test]
async fn errors_are_not_cached() {
    let backend = CountingBackend::new("value");
    backend.fail.store(true, Ordering::SeqCst);
    let resolver = resolver_with(&backend, Duration::from_secs(60), true);
    let err = resolver.resolve("tok").await.unwrap_err();
    assert!(
        matches!(&err, ResolveError::Backend { source, .. } if source.kind() == ErrorKind::Unavailable)
    );
    assert!(
        err.to_string()
            .starts_with("definition `tok` (backend `counting`): backend down"),
        "{err}"
    );
    backend.fail.store(false, Ordering::SeqCst);
    assert_eq!(
        resolver.resolve("tok").await.unwrap().secret.value.expose(),
        b"value"
    );
    assert_eq!(backend.calls(), 2);
}

/// Expiry is measured on the real clock (moka has no clock a test can move), so the
/// test polls until the short entry misses, within a deadline, and checks it did not
/// expire before its TTL.
#[tokio::test]
async fn per_definition_ttl_expires_the_entry() {
    let ttl = Duration::from_millis(50);
    let backend = CountingBackend::new("value");
    let short = definition("short", backend.clone(), ttl, true);
    let long = definition("long", backend.clone(), Duration::from_secs(60), true);
    let resolver = Resolver::from_definitions([short, long], 100);
    let filled = Instant::now();
    resolver.resolve("short").await.unwrap();
    resolver.resolve("long").await.unwrap();
    let deadline = filled + Duration::from_secs(20);
    loop {
        let cache = resolver.resolve("short").await.unwrap().cache;
        if cache == CacheOutcome::Miss {
            break;
        }
        assert!(Instant::now() < deadline, "`short` still cached after 20 s");
        // Polling interval only: the loop ends on the observed miss, not on time.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The entry was stored after `filled`, so it cannot expire sooner than this.
    assert!(
        filled.elapsed() >= ttl,
        "expired after {:?}, before its TTL of {ttl:?}",
        filled.elapsed()
    );
    assert_eq!(
        resolver.resolve("long").await.unwrap().cache,
        CacheOutcome::Hit
    );
    assert_eq!(backend.calls(), 3, "each hit while polling made no call");
}

#[tokio::test]
async fn a_zero_ttl_calls_the_backend_on_every_resolve() {
    let backend = CountingBackend::new("value");
    let resolver = resolver_with(&backend, Duration::ZERO, true);
    for call in 1..=5 {
        let resolved = resolver.resolve("tok").await.unwrap();
        assert_eq!(resolved.cache, CacheOutcome::Miss, "resolve {call}");
        assert_eq!(resolved.secret.value.expose(), b"value");
        assert_eq!(backend.calls(), call);
    }
}

/// The bound is reached, held exactly (not merely not exceeded, which an empty cache
/// also satisfies), and filling past it leaves it full.
#[tokio::test]
async fn capacity_bounds_the_cache() {
    const CAPACITY: usize = 10;
    let backend = CountingBackend::new("value");
    let names: Vec<String> = (0..5 * CAPACITY).map(|i| format!("d{i}")).collect();
    let definitions: Vec<_> = names
        .iter()
        .map(|name| definition(name, backend.clone(), Duration::from_secs(60), true))
        .collect();
    let resolver = Resolver::from_definitions(definitions, CAPACITY as u64);
    for name in &names[..CAPACITY] {
        resolver.resolve(name).await.unwrap();
    }
    assert_eq!(resolver.cached_entries().await, CAPACITY as u64);
    for name in &names[..CAPACITY] {
        assert_eq!(
            resolver.resolve(name).await.unwrap().cache,
            CacheOutcome::Hit,
            "{name}: a full cache keeps every entry up to its bound"
        );
    }
    assert_eq!(backend.calls(), CAPACITY);
    for name in &names[CAPACITY..] {
        resolver.resolve(name).await.unwrap();
    }
    assert_eq!(backend.calls(), names.len(), "every new name was fetched");
    assert_eq!(
        resolver.cached_entries().await,
        CAPACITY as u64,
        "{} names resolved with a bound of {CAPACITY}",
        names.len()
    );
}

#[tokio::test]
async fn a_moved_revision_makes_the_next_resolve_read_again() {
    let backend = CountingBackend::new("old");
    let resolver = resolver_with(&backend, Duration::from_secs(600), true);
    assert_eq!(
        resolver.resolve("tok").await.unwrap().secret.value.expose(),
        b"old"
    );
    *backend.value.lock().unwrap() = "new".into();
    backend.revision.fetch_add(1, Ordering::SeqCst);
    let again = resolver.resolve("tok").await.unwrap();
    assert_eq!(again.cache, CacheOutcome::Miss);
    assert_eq!(again.secret.value.expose(), b"new");
}

#[tokio::test]
async fn trimming_follows_the_definition_policy() {
    let backend = CountingBackend::new("\u{FEFF} token\u{A0}\r\n");
    let trimmed = resolver_with(&backend, Duration::from_secs(60), true);
    let resolved = trimmed.resolve("tok").await.unwrap();
    assert_eq!(resolved.secret.value.expose(), b"token");
    assert!(resolved.secret.trimmed);
    let kept = resolver_with(&backend, Duration::from_secs(60), false);
    let resolved = kept.resolve("tok").await.unwrap();
    assert_eq!(
        resolved.secret.value.expose(),
        "\u{FEFF} token\u{A0}\r\n".as_bytes()
    );
    assert!(!resolved.secret.trimmed);
}

#[tokio::test]
async fn invalidate_drops_one_or_all() {
    let backend = CountingBackend::new("value");
    let resolver = resolver_with(&backend, Duration::from_secs(60), true);
    resolver.resolve("tok").await.unwrap();
    resolver.invalidate("tok").await.unwrap();
    assert_eq!(
        resolver.resolve("tok").await.unwrap().cache,
        CacheOutcome::Miss
    );
    resolver.invalidate_all();
    assert_eq!(
        resolver.resolve("tok").await.unwrap().cache,
        CacheOutcome::Miss
    );
    assert!(matches!(
        resolver.invalidate("nope").await,
        Err(ResolveError::UnknownDefinition { .. })
    ));
}

#[tokio::test]
async fn bad_and_unknown_names_are_told_apart() {
    let backend = CountingBackend::new("value");
    let resolver = resolver_with(&backend, Duration::from_secs(60), true);
    assert!(matches!(
        resolver.resolve("").await,
        Err(ResolveError::InvalidName(NameError::Empty))
    ));
    assert!(matches!(
        resolver.resolve("a b").await,
        Err(ResolveError::InvalidName(_))
    ));
    let err = resolver.resolve("missing").await.unwrap_err();
    assert_eq!(err.to_string(), "no secret definition named `missing`");
    assert_eq!(backend.calls(), 0);
}

/// A batching backend that counts its calls, tells when each kind of call is made, and
/// can hold single fetches at a gate.
#[derive(Debug, Default)]
pub(super) struct BatchingBackend {
    pub(super) single_calls: AtomicUsize,
    pub(super) batch_calls: AtomicUsize,
    batch_sizes: std::sync::Mutex<Vec<usize>>,
    /// Notified (a stored permit, so never missed) when a single fetch starts.
    single_started: tokio::sync::Notify,
    /// Notified when `fetch_many` is called.
    batch_sent: tokio::sync::Notify,
    /// `None`: single fetches answer at once.
    hold_single: Option<Gate>,
}

#[async_trait]
impl Backend for BatchingBackend {
    fn kind(&self) -> &'static str {
        "batching"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::text_only()
    }

    async fn fetch(&self, secret: &SecretRef) -> Result<Fetched, BackendError> {
        self.single_calls.fetch_add(1, Ordering::SeqCst);
        self.single_started.notify_one();
        if let Some(gate) = &self.hold_single {
            gate.pass().await;
        }
        Ok(Fetched::new(SecretValue::from(format!("{} ", secret.id))))
    }

    fn max_batch(&self) -> usize {
        20
    }

    async fn fetch_many(&self, secrets: &[SecretRef]) -> Vec<Result<Fetched, BackendError>> {
        self.batch_calls.fetch_add(1, Ordering::SeqCst);
        self.batch_sizes.lock().unwrap().push(secrets.len());
        self.batch_sent.notify_one();
        secrets
            .iter()
            .map(|secret| {
                if secret.id == "broken" {
                    Err(BackendError::not_found("no such secret `broken`"))
                } else {
                    Ok(Fetched::new(SecretValue::from(format!("{} ", secret.id)))
                        .with_metadata("version_stages", "AWSCURRENT"))
                }
            })
            .collect()
    }
}

fn batching_definitions(backend: &Arc<BatchingBackend>, names: &[&str]) -> Vec<Arc<Definition>> {
    names
        .iter()
        .map(|name| {
            Arc::new(Definition {
                name: Arc::from(*name),
                sources: Sources::one(Source {
                    backend_name: "batching".into(),
                    backend: backend.clone(),
                    secret: SecretRef::new(*name),
                    meter: Default::default(),
                }),
                fallback_on: Default::default(),
                policy: CachePolicy::ttl_only(Duration::from_secs(60)),
                trim: true,
                description: String::new(),
                meter: Default::default(),
                hot: Default::default(),
            })
        })
        .collect()
}

#[tokio::test]
async fn a_batch_of_misses_is_one_fetch_many_and_keeps_per_name_results() {
    let backend = Arc::new(BatchingBackend::default());
    let resolver =
        Resolver::from_definitions(batching_definitions(&backend, &["a", "b", "broken"]), 100);
    let names: Vec<String> = ["a", "unknown", "b", "a", "broken"]
        .iter()
        .map(|n| (*n).to_owned())
        .collect();
    let results = resolver.resolve_many(&requests_of(&names)).await;
    assert_eq!(backend.batch_calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        *backend.batch_sizes.lock().unwrap(),
        [3],
        "a, b and broken once each"
    );
    assert_eq!(backend.single_calls.load(Ordering::SeqCst), 0);
    let a = results[0].as_ref().unwrap();
    assert_eq!(
        a.secret.value.expose(),
        b"a",
        "trimmed like any other fetch"
    );
    assert!(a.secret.trimmed);
    assert_eq!(a.secret.metadata["version_stages"], "AWSCURRENT");
    assert!(matches!(
        results[1],
        Err(ResolveError::UnknownDefinition { .. })
    ));
    assert_eq!(results[2].as_ref().unwrap().secret.value.expose(), b"b");
    assert_eq!(results[3].as_ref().unwrap().secret.value.expose(), b"a");
    assert!(
        matches!(&results[4], Err(ResolveError::Backend { source, .. }) if source.kind() == ErrorKind::NotFound)
    );

    // Now cached, except the error.
    let again = resolver.resolve_many(&requests_of(&names)).await;
    assert_eq!(again[0].as_ref().unwrap().cache, CacheOutcome::Hit);
    assert_eq!(
        *backend.batch_sizes.lock().unwrap(),
        [3, 1],
        "only `broken` again"
    );
}

/// The single resolve's fetch of `a` is held until the batch has been sent, so the
/// batch provably starts while `a` is in flight, whatever the scheduling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_and_a_concurrent_single_resolve_share_one_fetch() {
    let within = |what: &'static str| {
        move |_: tokio::time::error::Elapsed| panic!("{what} did not happen within 20 s")
    };
    let backend = Arc::new(BatchingBackend {
        hold_single: Some(Gate::default()),
        ..BatchingBackend::default()
    });
    let resolver = Arc::new(Resolver::from_definitions(
        batching_definitions(&backend, &["a", "b"]),
        100,
    ));
    let single = {
        let resolver = resolver.clone();
        tokio::spawn(async move { resolver.resolve("a").await })
    };
    tokio::time::timeout(Duration::from_secs(20), backend.single_started.notified())
        .await
        .unwrap_or_else(within("the single fetch of `a`"));
    let batch = {
        let resolver = resolver.clone();
        tokio::spawn(async move {
            resolver
                .resolve_many(&requests_of(&["a".to_owned(), "b".to_owned()]))
                .await
        })
    };
    tokio::time::timeout(Duration::from_secs(20), backend.batch_sent.notified())
        .await
        .unwrap_or_else(within("the batch"));
    backend.hold_single.as_ref().expect("held").open();
    let results = batch.await.unwrap();
    let single = single.await.unwrap().unwrap();
    assert_eq!(single.secret.value.expose(), b"a");
    assert_eq!(results[0].as_ref().unwrap().secret.value.expose(), b"a");
    assert_eq!(results[1].as_ref().unwrap().secret.value.expose(), b"b");
    assert_eq!(
        backend.single_calls.load(Ordering::SeqCst),
        1,
        "`a` was fetched by the single resolve"
    );
    assert_eq!(
        *backend.batch_sizes.lock().unwrap(),
        [1],
        "the batch fetched only `b`"
    );
}
