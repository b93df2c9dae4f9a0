//! The cache through backend faults, with the AWS backend against moto and a fault
//! proxy between them: outages are served stale, never-fetched definitions fail fast
//! while the circuit breaker bounds the calls, a deleted secret fails closed, and a
//! slow backend never makes a steady reader wait. Counters decide; time only bounds.

use crate::fault_proxy::{Fault, FaultProxy};
use crate::harness::{Daemon, Setup, resolve, wait_until_async};
use aws_sdk_secretsmanager::Client;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::Code;
use vaultbridge::proto::v1::{CacheOutcome, ResolveRequest};
use vaultbridge_backend_aws::moto::{self, Moto};

pub(crate) fn moto_address(moto: &Moto) -> SocketAddr {
    moto.endpoint()
        .trim_start_matches("http://")
        .parse()
        .expect("moto's address")
}

/// The daemon with one AWS backend behind `proxy`: one attempt per call with short
/// timeouts, and a breaker that opens after 3 failures for 200 ms to 1 s.
fn start(proxy: &FaultProxy, cache: &str, definitions: &str) -> Daemon {
    start_with_timeouts(proxy, cache, definitions, "2s", "3s")
}

fn start_with_timeouts(
    proxy: &FaultProxy,
    cache: &str,
    definitions: &str,
    attempt_timeout: &str,
    operation_timeout: &str,
) -> Daemon {
    start_configured(
        proxy,
        "",
        cache,
        definitions,
        attempt_timeout,
        operation_timeout,
    )
}

/// [`start_with_timeouts`] with more of the `server` section (`server` lines, indented).
pub(crate) fn start_configured(
    proxy: &FaultProxy,
    server: &str,
    cache: &str,
    definitions: &str,
    attempt_timeout: &str,
    operation_timeout: &str,
) -> Daemon {
    let config = format!(
        r#"server:
  unix_socket: vb.sock
{server}cache:
  breaker_failures: 3
  breaker_cooldown: 200ms
  breaker_max_cooldown: 1s
{cache}backends:
  aws:
    type: aws_secrets_manager
    region: {region}
    endpoint_url: http://{proxy}
    connect_timeout: 1s
    attempt_timeout: {attempt_timeout}
    operation_timeout: {operation_timeout}
    max_attempts: 1
definitions:
{definitions}"#,
        region = moto::REGION,
        proxy = proxy.address(),
    );
    let mut setup = Setup::new()
        .env("AWS_ACCESS_KEY_ID", moto::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", moto::SECRET_KEY);
    setup.env_remove = vec!["AWS_PROFILE".into(), "AWS_SESSION_TOKEN".into()];
    setup.custom_config = Some(config);
    setup.start()
}

pub(crate) async fn seed(client: &Client, name: &str, value: &str) {
    client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap();
}

/// Scenario 1: the backend refuses for 20 s (ten TTLs) while 50 clients resolve 10
/// cached definitions without pause. Not one resolve fails; during the outage the
/// values are the right ones, marked stale; after recovery every definition is served
/// fresh again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_the_ttl_is_served_stale_without_one_failed_resolve() {
    const DEFINITIONS: usize = 10;
    const CLIENTS: usize = 50;
    let moto = Moto::start();
    let aws = moto.client().await;
    for i in 0..DEFINITIONS {
        seed(&aws, &format!("outage/{i}"), &format!("outage-value-{i}")).await;
    }
    let proxy = FaultProxy::start(moto_address(&moto)).await;
    let definitions: String = (0..DEFINITIONS)
        .map(|i| format!("  d{i}:\n    backend: aws\n    secret: outage/{i}\n"))
        .collect();
    let daemon = start(&proxy, "  ttl: 2s\n", &definitions);
    let mut client = daemon.client().await;
    for i in 0..DEFINITIONS {
        resolve(&mut client, &format!("d{i}")).await.expect("warm");
    }

    proxy.set(Fault::Reset);
    let outage = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let recovered = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let wrong_values = Arc::new(AtomicUsize::new(0));
    let served_stale = Arc::new(Mutex::new(HashSet::new()));
    let fresh_after_recovery = Arc::new(Mutex::new(HashSet::new()));
    let resolves = Arc::new(AtomicUsize::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for task in 0..CLIENTS {
        let mut client = daemon.client().await;
        let (stop, recovered, failures, wrong_values, served_stale, fresh_after_recovery, resolves) = (
            stop.clone(),
            recovered.clone(),
            failures.clone(),
            wrong_values.clone(),
            served_stale.clone(),
            fresh_after_recovery.clone(),
            resolves.clone(),
        );
        clients.spawn(async move {
            let mut n = task;
            while !stop.load(Ordering::SeqCst) {
                let i = n % DEFINITIONS;
                n += 1;
                let after_recovery = recovered.load(Ordering::SeqCst);
                match resolve(&mut client, &format!("d{i}")).await {
                    Ok(secret) => {
                        if secret.text.as_deref() != Some(format!("outage-value-{i}").as_str()) {
                            wrong_values.fetch_add(1, Ordering::SeqCst);
                        }
                        if secret.stale {
                            assert_eq!(secret.cache, CacheOutcome::Stale as i32);
                            assert!(secret.stale_reason.is_some(), "a stale value says why");
                            served_stale.lock().unwrap().insert(i);
                        } else if after_recovery {
                            fresh_after_recovery.lock().unwrap().insert(i);
                        }
                    }
                    Err(status) => failures.lock().unwrap().push(format!("d{i}: {status}")),
                }
                resolves.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    // The outage lasts 20 s, and until every definition has been served stale.
    wait_until_async(
        Duration::from_secs(120),
        async || {
            (outage.elapsed() >= Duration::from_secs(20)
                && served_stale.lock().unwrap().len() == DEFINITIONS)
                .then_some(())
        },
        || format!("served stale: {:?}", served_stale.lock().unwrap()),
    )
    .await;
    let refused = proxy.accepted();

    proxy.set(Fault::Pass);
    recovered.store(true, Ordering::SeqCst);
    wait_until_async(
        Duration::from_secs(30),
        async || (fresh_after_recovery.lock().unwrap().len() == DEFINITIONS).then_some(()),
        || {
            format!(
                "fresh again after recovery: {:?}",
                fresh_after_recovery.lock().unwrap()
            )
        },
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    while let Some(task) = clients.join_next().await {
        task.expect("client task");
    }
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed resolves of {}, e.g. {:?}",
        failures.len(),
        resolves.load(Ordering::SeqCst),
        failures.first()
    );
    assert_eq!(wrong_values.load(Ordering::SeqCst), 0);
    // One warning per definition for the whole outage, not one per stale answer, and
    // one line per definition when the backend answers again.
    let output = daemon.output();
    assert_eq!(
        output
            .matches("the backend fails for a temporary reason")
            .count(),
        DEFINITIONS,
        "{output}"
    );
    assert_eq!(
        output.matches("the backend answers again").count(),
        DEFINITIONS,
        "{output}"
    );
    eprintln!(
        "outage: {} resolves, {} connections reached the proxy during the outage",
        resolves.load(Ordering::SeqCst),
        refused
    );
}

/// Scenario 2: a definition nobody fetched before the outage has no value to serve:
/// with the backend a black hole (connections accepted, never answered), it answers
/// UNAVAILABLE within its call timeout, never hangs, and the breaker keeps the calls
/// that reach the backend far below the resolves.
#[tokio::test]
async fn a_definition_never_fetched_during_an_outage_fails_fast_and_the_breaker_bounds_calls() {
    const RESOLVES: usize = 40;
    let moto = Moto::start();
    seed(&moto.client().await, "never", "never-value").await;
    let proxy = FaultProxy::start(moto_address(&moto)).await;
    proxy.set(Fault::BlackHole);
    let daemon = start(
        &proxy,
        "",
        "  never:\n    backend: aws\n    secret: never\n",
    );
    let mut client = daemon.client().await;
    let started = Instant::now();
    let mut breaker_said_so = false;
    for _ in 0..RESOLVES {
        let status = tokio::time::timeout(Duration::from_secs(20), resolve(&mut client, "never"))
            .await
            .expect("answered, not hung")
            .expect_err("nothing to serve");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(!status.message().contains("never-value"));
        breaker_said_so |= status.message().contains("circuit breaker");
    }
    let elapsed = started.elapsed();
    let calls = proxy.accepted();
    assert!(breaker_said_so, "no answer named the open breaker");
    // 3 failures open it; then at most one probe per cool-down (200 ms at least).
    let bound = 3 + usize::try_from(elapsed.as_millis() / 180).unwrap_or(usize::MAX);
    assert!(
        calls <= bound.min(RESOLVES - 1),
        "{calls} calls reached the backend for {RESOLVES} resolves in {elapsed:?}"
    );
}

/// Scenario 5: a secret deleted from the vault is an answer, not an outage: the next
/// read after the TTL returns NOT_FOUND, never the cached value, and the not-found is
/// remembered for a few seconds instead of asked for on every resolve.
#[tokio::test]
async fn a_deleted_secret_fails_closed_at_the_next_read() {
    let moto = Moto::start();
    let aws = moto.client().await;
    seed(&aws, "doomed", "doomed-value").await;
    let proxy = FaultProxy::start(moto_address(&moto)).await;
    let daemon = start(
        &proxy,
        "  negative_ttl: 1h\n",
        "  doomed:\n    backend: aws\n    secret: doomed\n    ttl: 1s\n",
    );
    let mut client = daemon.client().await;
    assert_eq!(
        resolve(&mut client, "doomed")
            .await
            .unwrap()
            .text
            .as_deref(),
        Some("doomed-value")
    );
    aws.delete_secret()
        .secret_id("doomed")
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    let status = wait_until_async(
        Duration::from_secs(30),
        async || match resolve(&mut client, "doomed").await {
            Ok(secret) => {
                assert!(!secret.stale, "a deleted secret was served stale");
                None
            }
            Err(status) => Some(status),
        },
        || "the deletion was never seen".to_owned(),
    )
    .await;
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let calls = moto.calls("GetSecretValue");
    for _ in 0..5 {
        let again = resolve(&mut client, "doomed")
            .await
            .expect_err("still gone");
        assert_eq!(again.code(), Code::NotFound);
    }
    assert_eq!(
        moto.calls("GetSecretValue"),
        calls,
        "the not-found was remembered"
    );
}

/// Scenario 3: every backend call takes 2 s, and a definition read steadily is
/// refreshed ahead of its TTL, so after the first read no read waits for the backend.
#[tokio::test]
async fn a_slow_backend_never_makes_a_steady_reader_wait() {
    let moto = Moto::start();
    seed(&moto.client().await, "slow", "slow-value").await;
    let proxy = FaultProxy::start(moto_address(&moto)).await;
    proxy.set(Fault::Delay(Duration::from_secs(2)));
    // A request may reach the proxy in more than one piece, each held 2 s.
    let daemon = start_with_timeouts(
        &proxy,
        "  refresh_ahead: 50%\n",
        "  slow:\n    backend: aws\n    secret: slow\n    ttl: 10s\n",
        "9s",
        "9s",
    );
    let mut client = daemon.client().await;
    let first = resolve(&mut client, "slow").await.unwrap();
    assert_eq!(first.cache, CacheOutcome::Miss as i32);
    let calls_after_first = moto.calls("GetSecretValue");
    let mut slow_reads = Vec::new();
    let mut reads = 0;
    // Reads go on until three background refreshes have landed (three TTL windows).
    wait_until_async(
        Duration::from_secs(120),
        async || {
            let started = Instant::now();
            let secret = resolve(&mut client, "slow").await.unwrap();
            let took = started.elapsed();
            reads += 1;
            if took > Duration::from_millis(100) {
                slow_reads.push((took, secret.cache));
            }
            assert_eq!(secret.text.as_deref(), Some("slow-value"));
            (moto.calls("GetSecretValue") >= calls_after_first + 3).then_some(())
        },
        || "three refreshes did not land".to_owned(),
    )
    .await;
    assert!(
        slow_reads.is_empty(),
        "{} of {reads} reads waited: {slow_reads:?}",
        slow_reads.len()
    );
}

/// Scenario 4: a value rotated in the vault is picked up within one refresh window
/// without anyone reading it, and a watcher gets exactly one event for the rotation.
#[tokio::test]
async fn a_rotation_reaches_a_watcher_once_within_one_refresh_window() {
    use futures_util::StreamExt;
    use vaultbridge::proto::v1::{WatchEventKind, WatchRequest};
    let moto = Moto::start();
    let aws = moto.client().await;
    seed(&aws, "rotating", "before-rotation").await;
    let proxy = FaultProxy::start(moto_address(&moto)).await;
    let daemon = start(
        &proxy,
        "",
        "  rotating:\n    backend: aws\n    secret: rotating\n    ttl: 2s\n",
    );
    let mut client = daemon.client().await;
    let mut events = client
        .watch(WatchRequest {
            names: vec!["rotating".into()],
        })
        .await
        .unwrap()
        .into_inner();
    let mut next = async |within: Duration| {
        tokio::time::timeout(within, events.next())
            .await
            .map(|event| event.expect("the stream goes on").expect("an event"))
    };
    let current = next(Duration::from_secs(30))
        .await
        .expect("the current state");
    assert_eq!(current.kind, WatchEventKind::Current as i32);
    let rotated = aws
        .put_secret_value()
        .secret_id("rotating")
        .secret_string("after-rotation")
        .send()
        .await
        .unwrap()
        .version_id
        .unwrap();
    let rotation = Instant::now();
    let changed = next(Duration::from_secs(30)).await.expect("the rotation");
    assert_eq!(changed.kind, WatchEventKind::Changed as i32);
    assert_eq!(changed.version_id.as_deref(), Some(rotated.as_str()));
    // One refresh window: the TTL, plus the watch's tick and the call, with room for a
    // machine busy with the other tests.
    assert!(
        rotation.elapsed() < Duration::from_secs(2) + Duration::from_secs(10),
        "picked up {:?} after the rotation",
        rotation.elapsed()
    );
    // Two more refreshes find the same version: no second event for one rotation.
    let calls = moto.calls("GetSecretValue");
    wait_until_async(
        Duration::from_secs(60),
        async || (moto.calls("GetSecretValue") >= calls + 2).then_some(()),
        || "the watch stopped refreshing".to_owned(),
    )
    .await;
    // Nothing can be awaited to prove an absence; this window only lets a wrongly sent
    // event arrive before the check.
    assert!(
        next(Duration::from_millis(500)).await.is_err(),
        "a second event for one rotation"
    );
    assert_eq!(
        resolve(&mut client, "rotating")
            .await
            .unwrap()
            .text
            .as_deref(),
        Some("after-rotation")
    );
}

/// A caller's gRPC deadline bounds its wait for the backend: against a black hole with
/// a 30 s call timeout, a resolve with a 500 ms deadline is ended by the daemon
/// (tonic answers CANCELLED, "Timeout expired"), and the daemon goes on serving.
#[tokio::test]
async fn a_callers_deadline_bounds_its_wait_for_the_backend() {
    let moto = Moto::start();
    seed(&moto.client().await, "deep", "deep-value").await;
    let proxy = FaultProxy::start(moto_address(&moto)).await;
    proxy.set(Fault::BlackHole);
    let daemon = start_with_timeouts(
        &proxy,
        "",
        "  deep:\n    backend: aws\n    secret: deep\n",
        "30s",
        "30s",
    );
    let mut client = daemon.client().await;
    let mut request = tonic::Request::new(ResolveRequest {
        name: "deep".into(),
        ..Default::default()
    });
    // The header alone, as any gRPC client sends its deadline; tonic's client-side
    // timeout would end the call on this side and prove nothing about the daemon.
    request
        .metadata_mut()
        .insert("grpc-timeout", "500m".parse().unwrap());
    let started = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(20), client.resolve(request))
        .await
        .expect("the deadline ended the call, not the backend's 30 s")
        .expect_err("no answer within the deadline");
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    proxy.set(Fault::Pass);
    let fresh = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Ok(secret) = resolve(&mut client, "deep").await {
                return secret;
            }
        }
    })
    .await
    .expect("served once the backend answers");
    assert_eq!(fresh.text.as_deref(), Some("deep-value"));
}
