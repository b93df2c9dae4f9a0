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
