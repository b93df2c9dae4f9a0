//! What is served when the backend fails, per-call freshness, not-found memory and
//! refresh ahead. A zero TTL makes every resolve call the backend, so these tests need
//! no clock: the outcome of each call is decided by what the backend answers.

use super::tests::{CountingBackend, definition};
use super::*;
use crate::config::CachePolicy;
use std::sync::atomic::Ordering;
use std::time::Instant;
use vaultbridge_backend_core::ErrorKind;

fn policy(ttl: Duration) -> CachePolicy {
    CachePolicy {
        ttl,
        max_stale: Duration::from_secs(3600),
        refresh_ahead: None,
        negative_ttl: Duration::ZERO,
    }
}

fn resolver(backend: &Arc<CountingBackend>, policy: CachePolicy) -> Resolver {
    let mut tok = Arc::into_inner(definition("tok", backend.clone(), policy.ttl, true))
        .expect("a fresh definition");
    tok.policy = policy;
    Resolver::from_definitions([Arc::new(tok)], 100)
}

#[tokio::test]
async fn a_temporary_failure_serves_the_last_good_value_marked_stale() {
    let backend = CountingBackend::new("good");
    let resolver = resolver(&backend, policy(Duration::ZERO));
    assert_eq!(
        resolver.resolve("tok").await.unwrap().cache,
        CacheOutcome::Miss
    );
    backend.fail.store(true, Ordering::SeqCst);
    for call in 2..=4 {
        let stale = resolver.resolve("tok").await.expect("served stale");
        assert_eq!(stale.cache, CacheOutcome::Stale);
        assert_eq!(stale.secret.value.expose(), b"good");
        let reason = stale.stale_reason.expect("a reason");
        assert!(reason.is_temporary());
        assert_eq!(reason.message(), "backend down");
        assert_eq!(
            backend.calls(),
            call,
            "each resolve still tried the backend"
        );
    }
    backend.fail.store(false, Ordering::SeqCst);
    *backend.value.lock().unwrap() = "rotated".into();
    let fresh = resolver.resolve("tok").await.unwrap();
    assert_eq!(fresh.cache, CacheOutcome::Miss);
    assert_eq!(fresh.secret.value.expose(), b"rotated");
    assert!(fresh.stale_reason.is_none());
}

#[tokio::test]
async fn a_permanent_answer_drops_the_value_and_is_never_hidden_by_it() {
    let backend = CountingBackend::new("good");
    let resolver = resolver(&backend, policy(Duration::ZERO));
    resolver.resolve("tok").await.unwrap();
    backend.gone.store(true, Ordering::SeqCst);
    let err = resolver.resolve("tok").await.expect_err("fail closed");
    assert!(
        matches!(&err, ResolveError::Backend { source, .. } if source.kind() == ErrorKind::NotFound),
        "{err}"
    );
    // The value was dropped: an outage right after cannot bring it back.
    backend.gone.store(false, Ordering::SeqCst);
    backend.fail.store(true, Ordering::SeqCst);
    let err = resolver
        .resolve("tok")
        .await
        .expect_err("nothing left to serve");
    assert!(
        matches!(&err, ResolveError::Backend { source, .. } if source.is_temporary()),
        "{err}"
    );
}

#[tokio::test]
async fn no_value_is_served_stale_past_max_stale() {
    let backend = CountingBackend::new("good");
    let mut no_stale = policy(Duration::ZERO);
    no_stale.max_stale = Duration::ZERO;
    let resolver = resolver(&backend, no_stale);
    resolver.resolve("tok").await.unwrap();
    backend.fail.store(true, Ordering::SeqCst);
    resolver
        .resolve("tok")
        .await
        .expect_err("max_stale 0s serves nothing stale");
}

#[tokio::test]
async fn a_caller_asking_for_freshness_gets_the_error_not_a_stale_value() {
    let backend = CountingBackend::new("good");
    let resolver = resolver(&backend, policy(Duration::from_secs(3600)));
    resolver.resolve("tok").await.unwrap();
    backend.fail.store(true, Ordering::SeqCst);
    let refresh = Freshness {
        refresh: true,
        ..Freshness::default()
    };
    resolver
        .resolve_with("tok", refresh)
        .await
        .expect_err("refresh: no stale value");
    let max_age = Freshness {
        max_age: Some(Duration::ZERO),
        ..Freshness::default()
    };
    resolver
        .resolve_with("tok", max_age)
        .await
        .expect_err("max_age 0: no stale value");
    // Without a demand, the value is fresh within its TTL and served as a hit.
    assert_eq!(
        resolver.resolve("tok").await.unwrap().cache,
        CacheOutcome::Hit
    );
    assert_eq!(backend.calls(), 3);
}

#[tokio::test]
async fn max_age_reads_again_only_a_value_older_than_asked() {
    let backend = CountingBackend::new("good");
    let resolver = resolver(&backend, policy(Duration::from_secs(3600)));
    resolver.resolve("tok").await.unwrap();
    let generous = Freshness {
        max_age: Some(Duration::from_secs(3600)),
        ..Freshness::default()
    };
    assert_eq!(
        resolver.resolve_with("tok", generous).await.unwrap().cache,
        CacheOutcome::Hit
    );
    assert_eq!(backend.calls(), 1);
    let strict = Freshness {
        max_age: Some(Duration::ZERO),
        ..Freshness::default()
    };
    assert_eq!(
        resolver.resolve_with("tok", strict).await.unwrap().cache,
        CacheOutcome::Miss
    );
    assert_eq!(backend.calls(), 2);
}

/// The refresh is held until every caller has asked, so they all overlap it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refresh_requests_make_one_backend_call() {
    const CALLERS: usize = 200;
    let backend = CountingBackend::gated("good");
    let gate = backend.gate.as_ref().expect("gated");
    gate.open();
    let resolver = Arc::new(resolver(&backend, policy(Duration::from_secs(3600))));
    resolver.resolve("tok").await.unwrap();
    gate.close();
    *backend.value.lock().unwrap() = "rotated".into();
    let refresh = Freshness {
        refresh: true,
        ..Freshness::default()
    };
    let mut tasks = tokio::task::JoinSet::new();
    let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let all_started = Arc::new(tokio::sync::Notify::new());
    for _ in 0..CALLERS {
        let (resolver, started, all_started) =
            (resolver.clone(), started.clone(), all_started.clone());
        tasks.spawn(async move {
            if started.fetch_add(1, Ordering::SeqCst) + 1 == CALLERS {
                all_started.notify_one();
            }
            resolver.resolve_with("tok", refresh).await
        });
    }
    all_started.notified().await;
    // Every caller must be waiting on the one refresh before it may answer; one that
    // came after it would rightly make a second call.
    let deadline = Instant::now() + Duration::from_secs(30);
    while resolver.state.waiting_on("tok") < CALLERS {
        assert!(
            Instant::now() < deadline,
            "callers did not all join the refresh"
        );
        // Pacing only: the loop ends when every caller is counted.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    gate.open();
    while let Some(result) = tasks.join_next().await {
        let resolved = result.expect("task").expect("resolved");
        assert_eq!(resolved.secret.value.expose(), b"rotated");
    }
    assert_eq!(
        backend.calls(),
        2,
        "one fill, then one refresh for every caller"
    );
}

#[tokio::test]
async fn a_not_found_is_remembered_for_negative_ttl() {
    let backend = CountingBackend::new("good");
    backend.gone.store(true, Ordering::SeqCst);
    let mut remember = policy(Duration::from_secs(3600));
    remember.negative_ttl = Duration::from_secs(3600);
    let resolver = resolver(&backend, remember);
    for _ in 0..3 {
        let err = resolver.resolve("tok").await.expect_err("not found");
        assert!(err.to_string().contains("no such secret"), "{err}");
    }
    assert_eq!(backend.calls(), 1, "the not-found was remembered");
    backend.gone.store(false, Ordering::SeqCst);
    let refresh = Freshness {
        refresh: true,
        ..Freshness::default()
    };
    assert_eq!(
        resolver
            .resolve_with("tok", refresh)
            .await
            .unwrap()
            .secret
            .value
            .expose(),
        b"good",
        "refresh bypasses the remembered not-found"
    );
    backend.gone.store(true, Ordering::SeqCst);
    resolver.invalidate("tok").await.unwrap();
    resolver.resolve("tok").await.expect_err("not found again");
    resolver.invalidate("tok").await.unwrap();
    backend.gone.store(false, Ordering::SeqCst);
    resolver
        .resolve("tok")
        .await
        .expect("invalidate forgets the not-found");
    assert_eq!(backend.calls(), 4);
}

#[tokio::test]
async fn without_negative_ttl_every_not_found_asks_the_backend() {
    let backend = CountingBackend::new("good");
    backend.gone.store(true, Ordering::SeqCst);
    let resolver = resolver(&backend, policy(Duration::from_secs(3600)));
    for _ in 0..3 {
        resolver.resolve("tok").await.expect_err("not found");
    }
    assert_eq!(backend.calls(), 3);
}

/// A steady reader of a value whose refresh point (half its TTL) passes gets hits
/// only, while the value is refreshed behind it. Reads go on until two refreshes have
/// landed; the loop ends on that condition, with a deadline.
#[tokio::test]
async fn a_steady_reader_never_waits_for_the_backend() {
    let backend = CountingBackend::new("good");
    let mut ahead = policy(Duration::from_millis(400));
    ahead.refresh_ahead = Some(crate::config::RefreshAhead(50));
    let resolver = resolver(&backend, ahead);
    assert_eq!(
        resolver.resolve("tok").await.unwrap().cache,
        CacheOutcome::Miss
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut reads = 0;
    while backend.calls() < 3 {
        let resolved = resolver.resolve("tok").await.unwrap();
        assert_eq!(
            resolved.cache,
            CacheOutcome::Hit,
            "read {reads} waited for the backend"
        );
        reads += 1;
        assert!(Instant::now() < deadline, "no refresh within 30 s");
        // Pacing only: the loop ends when the refreshes are counted.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(reads > 0);
}
