//! Issue 11, scenario 6: a thundering herd makes one backend call. The AWS backend
//! (moto) sits behind the fault proxy, which holds the first call while 1,000
//! concurrent callers arrive; the daemon's own in-flight gauge, scraped, says when
//! all of them are inside; then the call is released, and moto counts one
//! GetSecretValue. The same for 1,000 concurrent `refresh: true` calls.

use crate::fault_proxy::{Fault, FaultProxy};
use crate::harness::{Daemon, wait_until_async};
use crate::metrics::{Scrape, http_get, sample_in};
use crate::resilience::{moto_address, seed, start_configured};
use std::time::{Duration, Instant};
use vaultbridge::proto::v1::{CacheOutcome, ResolveRequest};
use vaultbridge_backend_aws::moto::Moto;

const CALLERS: usize = 1_000;
/// Callers share connections as real clients do, and each connection stays well
/// under HTTP/2's usual limit of concurrent streams.
const CONNECTIONS: usize = 20;
const RESOLVES_IN_FLIGHT: &str =
    r#"vaultbridge_grpc_requests_in_flight{service="vaultbridge.v1.Secrets",method="Resolve"}"#;

/// Sends `CALLERS` concurrent resolves of `herd` (with `refresh` as given), waits
/// until the scraped gauge counts every one inside the daemon, releases the proxy, and
/// returns each answer's cache outcome.
async fn herd(daemon: &Daemon, proxy: &FaultProxy, refresh: bool) -> Vec<i32> {
    let metrics = daemon.metrics_address();
    let mut clients = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        clients.push(daemon.client().await);
    }
    proxy.hold();
    let started = Instant::now();
    let mut callers = tokio::task::JoinSet::new();
    for i in 0..CALLERS {
        let mut client = clients[i % CONNECTIONS].clone();
        callers.spawn(async move {
            client
                .resolve(ResolveRequest {
                    name: "herd".into(),
                    refresh,
                    ..Default::default()
                })
                .await
                .map(|response| response.into_inner().secret.expect("a secret"))
        });
    }
    let inside = std::sync::atomic::AtomicU64::new(0);
    wait_until_async(
        Duration::from_secs(300),
        async || {
            let (_, body) = tokio::task::spawn_blocking(move || http_get(metrics, "/metrics"))
                .await
                .unwrap();
            let now = sample_in(&body, RESOLVES_IN_FLIGHT).unwrap_or(0.0);
            inside.store(now as u64, std::sync::atomic::Ordering::SeqCst);
            (now >= CALLERS as f64).then_some(())
        },
        || {
            format!(
                "only {} of {CALLERS} resolves reached the daemon",
                inside.load(std::sync::atomic::Ordering::SeqCst)
            )
        },
    )
    .await;
    let assembled = started.elapsed();
    proxy.release();
    let mut outcomes = Vec::with_capacity(CALLERS);
    while let Some(answer) = callers.join_next().await {
        let secret = answer.expect("caller task").expect("resolved");
        assert_eq!(secret.text.as_deref(), Some("herd-value"));
        outcomes.push(secret.cache);
    }
    eprintln!(
        "herd (refresh: {refresh}): {CALLERS} callers inside the daemon after {assembled:?}, all answered after {:?}",
        started.elapsed()
    );
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_first_resolves_and_refreshes_each_make_one_backend_call() {
    let moto = Moto::start();
    seed(&moto.client().await, "herd", "herd-value").await;
    let proxy = FaultProxy::start(moto_address(&moto)).await;
    proxy.set(Fault::Gated);
    let daemon = start_configured(
        &proxy,
        "  metrics:\n    address: 127.0.0.1:0\n",
        "",
        "  herd:\n    backend: aws\n    secret: herd\n",
        "120s",
        "120s",
    );
    let calls = || moto.calls("GetSecretValue");
    let before = Scrape::of(daemon.metrics_address());
    assert_eq!(calls(), 0);

    let first = herd(&daemon, &proxy, false).await;
    assert_eq!(
        calls(),
        1,
        "one GetSecretValue for {CALLERS} first resolves"
    );
    assert!(
        first
            .iter()
            .all(|cache| *cache == CacheOutcome::Miss as i32)
    );

    let refreshed = herd(&daemon, &proxy, true).await;
    assert_eq!(
        calls(),
        2,
        "one more GetSecretValue for {CALLERS} refreshes"
    );
    assert!(
        refreshed
            .iter()
            .all(|cache| *cache == CacheOutcome::Miss as i32)
    );

    // The daemon's own count agrees with moto's.
    let after = Scrape::of(daemon.metrics_address());
    let backend_calls = |scrape: &Scrape| {
        scrape.value(
            "vaultbridge_backend_calls_total",
            &[
                ("backend", "aws"),
                ("operation", "fetch"),
                ("outcome", "ok"),
            ],
        )
    };
    assert_eq!(backend_calls(&after) - backend_calls(&before), 2.0);
    let resolves =
        |scrape: &Scrape| scrape.value("vaultbridge_resolves_total", &[("cache", "miss")]);
    assert_eq!(resolves(&after) - resolves(&before), (2 * CALLERS) as f64);
}
