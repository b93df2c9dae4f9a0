use super::*;
use async_trait::async_trait;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use vaultbridge_backend_core::{Capabilities, ErrorKind, Fetched};

/// Counts calls, answers after a delay, and can be told to fail or to change value.
#[derive(Debug, Default)]
struct CountingBackend {
    calls: AtomicUsize,
    delay: Duration,
    fail: std::sync::atomic::AtomicBool,
    revision: AtomicU64,
    value: std::sync::Mutex<String>,
}

impl CountingBackend {
    fn new(value: &str, delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            delay,
            value: std::sync::Mutex::new(value.to_owned()),
            ..Self::default()
        })
    }

    fn calls(&self) -> usize {
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
        tokio::time::sleep(self.delay).await;
        if self.fail.load(Ordering::SeqCst) {
            return Err(BackendError::unavailable("backend down"));
        }
        let value = self.value.lock().expect("lock").clone();
        Ok(Fetched::new(SecretValue::from(value)).with_version("v1"))
    }

    fn revision(&self) -> Option<u64> {
        Some(self.revision.load(Ordering::SeqCst))
    }
}

fn definition(
    name: &str,
    backend: Arc<CountingBackend>,
    ttl: Duration,
    trim: bool,
) -> Arc<Definition> {
    Arc::new(Definition {
        name: Arc::from(name),
        backend_name: "counting".into(),
        backend,
        secret: SecretRef::new(name),
        ttl,
        trim,
        description: String::new(),
    })
}

fn resolver_with(backend: &Arc<CountingBackend>, ttl: Duration, trim: bool) -> Resolver {
    Resolver::from_definitions([definition("tok", backend.clone(), ttl, trim)], 100)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_misses_make_one_backend_call() {
    let backend = CountingBackend::new("value", Duration::from_millis(50));
    let resolver = Arc::new(resolver_with(&backend, Duration::from_secs(60), true));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let resolver = resolver.clone();
        tasks.spawn(async move { resolver.resolve("tok").await });
    }
    let mut resolved = 0;
    while let Some(result) = tasks.join_next().await {
        let result = result.expect("task").expect("resolves");
        assert_eq!(result.secret.value.expose(), b"value");
        resolved += 1;
    }
    assert_eq!(resolved, 1000);
    assert_eq!(backend.calls(), 1);
}

#[tokio::test]
async fn a_second_resolve_is_a_hit() {
    let backend = CountingBackend::new("value", Duration::ZERO);
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
    let backend = CountingBackend::new("value", Duration::ZERO);
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

#[tokio::test]
async fn per_definition_ttl_expires_the_entry() {
    let backend = CountingBackend::new("value", Duration::ZERO);
    let short = definition("short", backend.clone(), Duration::from_millis(50), true);
    let long = definition("long", backend.clone(), Duration::from_secs(60), true);
    let resolver = Resolver::from_definitions([short, long], 100);
    resolver.resolve("short").await.unwrap();
    resolver.resolve("long").await.unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(
        resolver.resolve("short").await.unwrap().cache,
        CacheOutcome::Miss
    );
    assert_eq!(
        resolver.resolve("long").await.unwrap().cache,
        CacheOutcome::Hit
    );
    assert_eq!(backend.calls(), 3);
}

#[tokio::test]
async fn capacity_bounds_the_cache() {
    let backend = CountingBackend::new("value", Duration::ZERO);
    let definitions: Vec<_> = (0..50)
        .map(|i| {
            definition(
                &format!("d{i}"),
                backend.clone(),
                Duration::from_secs(60),
                true,
            )
        })
        .collect();
    let resolver = Resolver::from_definitions(definitions, 10);
    for i in 0..50 {
        resolver.resolve(&format!("d{i}")).await.unwrap();
    }
    let cached = resolver.cached_entries().await;
    assert!(cached <= 10, "{cached} entries cached with a bound of 10");
}

#[tokio::test]
async fn a_moved_revision_makes_the_next_resolve_read_again() {
    let backend = CountingBackend::new("old", Duration::ZERO);
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
    let backend = CountingBackend::new("\u{FEFF} token\u{A0}\r\n", Duration::ZERO);
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
    let backend = CountingBackend::new("value", Duration::ZERO);
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
    let backend = CountingBackend::new("value", Duration::ZERO);
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

/// A batching backend that counts its calls and answers after a delay.
#[derive(Debug, Default)]
struct BatchingBackend {
    single_calls: AtomicUsize,
    batch_calls: AtomicUsize,
    batch_sizes: std::sync::Mutex<Vec<usize>>,
    delay: Duration,
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
        tokio::time::sleep(self.delay).await;
        Ok(Fetched::new(SecretValue::from(format!("{} ", secret.id))))
    }

    fn max_batch(&self) -> usize {
        20
    }

    async fn fetch_many(&self, secrets: &[SecretRef]) -> Vec<Result<Fetched, BackendError>> {
        self.batch_calls.fetch_add(1, Ordering::SeqCst);
        self.batch_sizes.lock().unwrap().push(secrets.len());
        tokio::time::sleep(self.delay).await;
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
                backend_name: "batching".into(),
                backend: backend.clone(),
                secret: SecretRef::new(*name),
                ttl: Duration::from_secs(60),
                trim: true,
                description: String::new(),
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
    let results = resolver.resolve_many(&names).await;
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
    let again = resolver.resolve_many(&names).await;
    assert_eq!(again[0].as_ref().unwrap().cache, CacheOutcome::Hit);
    assert_eq!(
        *backend.batch_sizes.lock().unwrap(),
        [3, 1],
        "only `broken` again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_and_a_concurrent_single_resolve_share_one_fetch() {
    let backend = Arc::new(BatchingBackend {
        delay: Duration::from_millis(100),
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
    // Let the single resolve start its fetch first.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let results = resolver
        .resolve_many(&["a".to_owned(), "b".to_owned()])
        .await;
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
