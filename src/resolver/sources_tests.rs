//! Definitions with `sources`: which source serves, when the next one is asked, what
//! is answered when none serves, and how that meets the cache, the breaker, batching
//! and the metrics. The resolver is built from a parsed config, as the daemon builds
//! it, over counting backends; a zero TTL makes every resolve a backend read.

use super::tests::{BatchingBackend, CountingBackend};
use super::*;
use crate::config::Vars;
use prometheus_client::registry::Registry;
use std::path::Path;
use std::sync::atomic::Ordering;
use tonic::Code;
use vaultbridge_backend_core::ErrorKind;

const BACKENDS: &str = "backends:\n  a:\n    type: env\n  b:\n    type: env\n";

/// `tok` reads `S` from `a`, then from `b`; `extra` adds lines to the definition.
fn config(cache: &str, extra: &str) -> Config {
    let text = format!(
        "server:\n  unix_socket: vb.sock\ncache:\n  ttl: 0s\n  max_stale: 1h\n  negative_ttl: 0s\n{cache}{BACKENDS}definitions:\n  tok:\n    sources:\n      - backend: a\n        secret: S\n      - backend: b\n        secret: S\n{extra}"
    );
    let vars: BTreeMap<String, String> = BTreeMap::new();
    Config::parse(&text, "t.yaml", Path::new(""), &vars as &dyn Vars).expect("valid")
}

struct Sources {
    a: Arc<CountingBackend>,
    b: Arc<CountingBackend>,
    resolver: Resolver,
    registry: Registry,
}

fn build(config: &Config) -> Sources {
    let (a, b) = (
        CountingBackend::new("from-a"),
        CountingBackend::new("from-b"),
    );
    let backends: BTreeMap<String, Arc<dyn Backend>> = [
        ("a".to_owned(), a.clone() as Arc<dyn Backend>),
        ("b".to_owned(), b.clone() as Arc<dyn Backend>),
    ]
    .into();
    let (metrics, registry) = Metrics::new(false);
    let resolver = Resolver::metered(config, &backends, Some(&metrics)).expect("bound");
    Sources {
        a,
        b,
        resolver,
        registry,
    }
}

fn sources() -> Sources {
    build(&config("", ""))
}

impl Sources {
    /// A counter or gauge as the metrics endpoint shows it; 0 when not there yet.
    fn sample(&self, series: &str) -> f64 {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("encode");
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map_or(0.0, |value| value.parse().expect("a number"))
    }
}

fn served_by(resolved: &Resolved) -> (usize, &str, &[u8]) {
    (
        resolved.secret.source,
        &resolved.source().backend_name,
        resolved.secret.value.expose(),
    )
}

#[tokio::test]
async fn the_first_source_serves_when_it_has_the_secret_and_the_next_is_not_asked() {
    let s = sources();
    let resolved = s.resolver.resolve("tok").await.expect("resolves");
    assert_eq!(served_by(&resolved), (0, "a", &b"from-a"[..]));
    assert_eq!((s.a.calls(), s.b.calls()), (1, 0));
}

#[tokio::test]
async fn a_source_without_the_secret_is_passed_over_and_counted() {
    let s = sources();
    s.a.gone.store(true, Ordering::SeqCst);
    let resolved = s.resolver.resolve("tok").await.expect("resolves");
    assert_eq!(served_by(&resolved), (1, "b", &b"from-b"[..]));
    assert_eq!((s.a.calls(), s.b.calls()), (1, 1));
    assert_eq!(
        s.sample(r#"vaultbridge_fallbacks_total{backend="a",reason="not_found"}"#),
        1.0
    );
    // The last source has none after it: its failures are never counted as fallbacks.
    s.b.gone.store(true, Ordering::SeqCst);
    let err = s.resolver.resolve("tok").await.expect_err("in neither");
    assert_eq!(
        s.sample(r#"vaultbridge_fallbacks_total{backend="b",reason="not_found"}"#),
        0.0
    );
    // In no source: the first source's answer, naming it.
    assert!(
        matches!(&err, ResolveError::Backend { backend, source, .. }
            if backend == "a" && source.kind() == ErrorKind::NotFound),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_source_that_is_down_is_passed_over_and_asked_first_again_on_the_next_read() {
    let s = sources();
    s.a.fail.store(true, Ordering::SeqCst);
    let resolved = s.resolver.resolve("tok").await.expect("resolves");
    assert_eq!(served_by(&resolved), (1, "b", &b"from-b"[..]));
    assert_eq!(
        resolved.cache,
        CacheOutcome::Miss,
        "a fresh value, not stale"
    );
    assert_eq!(
        s.sample(r#"vaultbridge_fallbacks_total{backend="a",reason="unavailable"}"#),
        1.0
    );

    s.a.fail.store(false, Ordering::SeqCst);
    let resolved = s.resolver.resolve("tok").await.expect("resolves");
    assert_eq!(served_by(&resolved), (0, "a", &b"from-a"[..]));
    assert_eq!(
        (s.a.calls(), s.b.calls()),
        (2, 1),
        "one read back to the first source, the second not asked"
    );
}

#[tokio::test]
async fn a_denial_is_the_answer_and_the_next_source_is_never_asked() {
    let s = sources();
    s.a.denied.store(true, Ordering::SeqCst);
    let err = s.resolver.resolve("tok").await.expect_err("denied");
    assert_eq!(
        crate::status::code_and_message(&err).0,
        Code::PermissionDenied
    );
    assert!(
        matches!(&err, ResolveError::Backend { backend, .. } if backend == "a"),
        "{err:?}"
    );
    assert_eq!((s.a.calls(), s.b.calls()), (1, 0));
    assert_eq!(
        s.sample(r#"vaultbridge_backend_calls_total{backend="b",operation="fetch",outcome="ok"}"#),
        0.0
    );
}

/// A later source's denial is surfaced too, even after an earlier source passed over.
#[tokio::test]
async fn a_denial_by_a_later_source_is_surfaced_not_hidden_by_the_earlier_failure() {
    let s = sources();
    s.a.gone.store(true, Ordering::SeqCst);
    s.b.denied.store(true, Ordering::SeqCst);
    let err = s.resolver.resolve("tok").await.expect_err("denied");
    assert!(
        matches!(&err, ResolveError::Backend { backend, source, .. }
            if backend == "b" && source.kind() == ErrorKind::PermissionDenied),
        "{err:?}"
    );
}

/// A source that could not answer might hold the secret: with every source failing,
/// its temporary failure decides, so the last good value is served stale rather than
/// dropped on the next source's not-found.
#[tokio::test]
async fn when_no_source_serves_a_temporary_failure_decides_and_the_value_is_served_stale() {
    let s = sources();
    s.resolver.resolve("tok").await.expect("warm");
    s.a.fail.store(true, Ordering::SeqCst);
    s.b.gone.store(true, Ordering::SeqCst);
    let resolved = s.resolver.resolve("tok").await.expect("stale");
    assert_eq!(resolved.cache, CacheOutcome::Stale);
    assert_eq!(served_by(&resolved), (0, "a", &b"from-a"[..]));
    assert_eq!(
        resolved.stale_reason.as_ref().map(|err| err.kind()),
        Some(ErrorKind::Unavailable)
    );
    // Without a cached value, the temporary failure is the answer, naming its source.
    s.resolver.invalidate("tok").await.expect("known");
    let err = s.resolver.resolve("tok").await.expect_err("no value");
    assert!(
        matches!(&err, ResolveError::Backend { backend, source, .. }
            if backend == "a" && source.is_temporary()),
        "{err:?}"
    );
}

#[tokio::test]
async fn fallback_on_decides_which_failures_are_passed_over() {
    let s = build(&config("", "    fallback_on: [not_found]\n"));
    s.a.fail.store(true, Ordering::SeqCst);
    let err = s
        .resolver
        .resolve("tok")
        .await
        .expect_err("not passed over");
    assert!(
        matches!(&err, ResolveError::Backend { source, .. } if source.is_temporary()),
        "{err:?}"
    );
    assert_eq!(s.b.calls(), 0);

    let s = build(&config("", "    fallback_on: [temporary]\n"));
    s.a.gone.store(true, Ordering::SeqCst);
    let err = s
        .resolver
        .resolve("tok")
        .await
        .expect_err("not passed over");
    assert!(
        matches!(&err, ResolveError::Backend { source, .. } if source.kind() == ErrorKind::NotFound),
        "{err:?}"
    );
    assert_eq!(s.b.calls(), 0);
}

/// Each source keeps its backend's breaker: once the first source's opens, reads go
/// to the next without calling the first, until its cool-down ends.
#[tokio::test]
async fn an_open_breaker_passes_over_its_source_without_calling_it() {
    let s = build(&config(
        "  breaker_failures: 1\n  breaker_cooldown: 1h\n  breaker_max_cooldown: 1h\n",
        "",
    ));
    s.a.fail.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        let resolved = s.resolver.resolve("tok").await.expect("resolves");
        assert_eq!(served_by(&resolved), (1, "b", &b"from-b"[..]));
    }
    assert_eq!((s.a.calls(), s.b.calls()), (1, 3));
    assert_eq!(
        s.sample(r#"vaultbridge_backend_breaker_rejections_total{backend="a"}"#),
        2.0
    );
}

/// A batch of misses still shares one `fetch_many` for definitions with one source; a
/// definition with `sources` is read on its own, from its first source.
#[tokio::test]
async fn definitions_with_sources_are_read_on_their_own_in_a_batch() {
    let text = format!(
        "server:\n  unix_socket: vb.sock\n{BACKENDS}definitions:\n  one:\n    backend: a\n    secret: ONE\n  two:\n    backend: a\n    secret: TWO\n  both:\n    sources:\n      - backend: a\n        secret: BOTH\n      - backend: b\n        secret: BOTH\n"
    );
    let vars: BTreeMap<String, String> = BTreeMap::new();
    let config = Config::parse(&text, "t.yaml", Path::new(""), &vars as &dyn Vars).expect("valid");
    let a = Arc::new(BatchingBackend::default());
    let b = CountingBackend::new("from-b");
    let backends: BTreeMap<String, Arc<dyn Backend>> = [
        ("a".to_owned(), a.clone() as Arc<dyn Backend>),
        ("b".to_owned(), b.clone() as Arc<dyn Backend>),
    ]
    .into();
    let resolver = Resolver::new(&config, &backends).expect("bound");
    let requests: Vec<(String, Freshness)> = ["one", "two", "both"]
        .iter()
        .map(|name| ((*name).to_owned(), Freshness::default()))
        .collect();
    let results = resolver.resolve_many(&requests).await;
    let values: Vec<Vec<u8>> = results
        .iter()
        .map(|result| {
            result
                .as_ref()
                .expect("resolves")
                .secret
                .value
                .expose()
                .to_vec()
        })
        .collect();
    assert_eq!(values, [b"ONE".to_vec(), b"TWO".to_vec(), b"BOTH".to_vec()]);
    assert_eq!(a.batch_calls.load(Ordering::SeqCst), 1);
    assert_eq!(a.single_calls.load(Ordering::SeqCst), 1);
    assert_eq!(b.calls(), 0);
}

/// The value served by a later source is cached for the definition like any other:
/// hits are served from it until the next read, which asks the first source again.
#[tokio::test]
async fn a_value_from_a_later_source_is_cached_and_the_next_refresh_returns_to_the_first() {
    let s = build(&config("", "    ttl: 1h\n"));
    s.a.gone.store(true, Ordering::SeqCst);
    assert_eq!(s.resolver.resolve("tok").await.expect("b").secret.source, 1);
    s.a.gone.store(false, Ordering::SeqCst);
    let hit = s.resolver.resolve("tok").await.expect("cached");
    assert_eq!((hit.cache, hit.secret.source), (CacheOutcome::Hit, 1));
    assert_eq!((s.a.calls(), s.b.calls()), (1, 1));
    let refreshed = s
        .resolver
        .resolve_with(
            "tok",
            Freshness {
                refresh: true,
                ..Freshness::default()
            },
        )
        .await
        .expect("refreshed");
    assert_eq!(served_by(&refreshed), (0, "a", &b"from-a"[..]));
    assert_eq!((s.a.calls(), s.b.calls()), (2, 1));
}
