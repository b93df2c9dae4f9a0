use super::*;
use prometheus_client::encoding::text::encode;

fn scrape(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text
}

/// The value of the sample written exactly as `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse().unwrap())
}

#[test]
fn definitions_share_their_counters_unless_per_definition() {
    let (metrics, registry) = Metrics::new(false);
    let (a, b) = (metrics.definition("a"), metrics.definition("b"));
    a.hit();
    b.hit();
    b.miss();
    a.negative();
    b.stale();
    a.refresh_ahead();
    let text = scrape(&registry);
    assert_eq!(
        sample(&text, r#"vaultbridge_resolves_total{cache="hit"}"#),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"vaultbridge_resolves_total{cache="miss"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"vaultbridge_resolves_total{cache="stale"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"vaultbridge_resolves_total{cache="negative"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "vaultbridge_refreshes_ahead_total"),
        Some(1.0),
        "{text}"
    );
    assert!(
        !text.contains("definition="),
        "no definition label by default:\n{text}"
    );

    let (metrics, registry) = Metrics::new(true);
    metrics.definition("a").hit();
    metrics.definition("b").miss();
    let text = scrape(&registry);
    assert_eq!(
        sample(
            &text,
            r#"vaultbridge_resolves_total{cache="hit",definition="a"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"vaultbridge_resolves_total{cache="hit",definition="b"}"#
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"vaultbridge_resolves_total{cache="miss",definition="b"}"#
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn calls_are_counted_by_code_and_in_flight_while_they_run() {
    let (metrics, registry) = Metrics::new(false);
    let meter = metrics.service("vaultbridge.v1.Secrets", &["Resolve", "Watch"]);
    let in_flight =
        r#"vaultbridge_grpc_requests_in_flight{service="vaultbridge.v1.Secrets",method="Resolve"}"#;
    let (entered_tx, entered) = tokio::sync::oneshot::channel();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let held = tokio::spawn({
        let meter = meter.clone();
        async move {
            meter
                .observe(0, async move {
                    let _ = entered_tx.send(());
                    let _ = released.await;
                    Ok::<_, tonic::Status>(())
                })
                .await
        }
    });
    entered.await.unwrap();
    assert_eq!(sample(&scrape(&registry), in_flight), Some(1.0));
    release.send(()).unwrap();
    held.await.unwrap().unwrap();
    let _ = meter
        .observe(0, async { Err::<(), _>(tonic::Status::not_found("x")) })
        .await;
    // A call dropped before it ends: its caller went away.
    let (_never, never) = tokio::sync::oneshot::channel::<()>();
    let dropped = meter.observe(1, async move {
        let _ = never.await;
        Ok::<_, tonic::Status>(())
    });
    let _ = tokio::time::timeout(std::time::Duration::from_millis(1), dropped).await;
    let text = scrape(&registry);
    assert_eq!(sample(&text, in_flight), Some(0.0), "{text}");
    let count = |method: &str, code: &str| {
        sample(
            &text,
            &format!(
                r#"vaultbridge_grpc_requests_total{{service="vaultbridge.v1.Secrets",method="{method}",code="{code}"}}"#
            ),
        )
    };
    assert_eq!(count("Resolve", "OK"), Some(1.0), "{text}");
    assert_eq!(count("Resolve", "NOT_FOUND"), Some(1.0));
    assert_eq!(count("Watch", "CANCELLED"), Some(1.0));
    assert_eq!(
        count("Watch", "OK"),
        None,
        "codes never seen make no series"
    );
}

#[tokio::test]
async fn a_service_without_metrics_just_runs_the_call() {
    let meter = ServiceMeter::default();
    let answer = meter.observe(3, async { Ok::<_, tonic::Status>(7) }).await;
    assert_eq!(answer.unwrap(), 7);
}

#[test]
fn backend_calls_are_timed_and_counted_by_outcome() {
    let (metrics, registry) = Metrics::new(false);
    let meter = metrics.backend("aws");
    let call = meter.call(Operation::Fetch);
    let in_flight = r#"vaultbridge_backend_calls_in_flight{backend="aws"}"#;
    assert_eq!(sample(&scrape(&registry), in_flight), Some(1.0));
    call.end(Ok(()));
    meter
        .call(Operation::FetchMany)
        .end(Err(&BackendError::unavailable("down")));
    drop(meter.call(Operation::Fetch));
    meter.breaker(BreakerState::Open);
    meter.rejected();
    let text = scrape(&registry);
    assert_eq!(sample(&text, in_flight), Some(0.0), "{text}");
    assert_eq!(
        sample(
            &text,
            r#"vaultbridge_backend_calls_total{backend="aws",operation="fetch",outcome="ok"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"vaultbridge_backend_calls_total{backend="aws",operation="fetch_many",outcome="unavailable"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"vaultbridge_backend_call_duration_seconds_count{backend="aws",operation="fetch"}"#
        ),
        Some(1.0),
        "a cancelled call is not timed"
    );
    assert_eq!(
        sample(
            &text,
            r#"vaultbridge_backend_breaker_state{backend="aws",state="open"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"vaultbridge_backend_breaker_state{backend="aws",state="closed"}"#
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"vaultbridge_backend_breaker_rejections_total{backend="aws"}"#
        ),
        Some(1.0)
    );
}

#[test]
fn build_info_and_reloads_are_there_from_the_start() {
    let (_metrics, registry) = Metrics::new(false);
    let text = scrape(&registry);
    assert_eq!(
        sample(
            &text,
            &format!(
                r#"vaultbridge_build_info{{version="{}"}}"#,
                env!("CARGO_PKG_VERSION")
            )
        ),
        Some(1.0),
        "{text}"
    );
    for outcome in RELOAD_OUTCOMES {
        let series = format!(r#"vaultbridge_config_reloads_total{{outcome="{outcome}"}}"#);
        assert_eq!(sample(&text, &series), Some(0.0), "{text}");
    }
}

#[test]
fn the_classic_text_format_names_counter_families_as_their_samples() {
    let (metrics, registry) = Metrics::new(false);
    metrics.definition("a").hit();
    metrics.backend("b").call(Operation::Fetch).end(Ok(()));
    let classic = http::classic_text(&scrape(&registry));
    assert!(!classic.contains("# EOF"), "{classic}");
    assert!(!classic.contains("# UNIT"), "{classic}");
    assert!(
        classic.contains("# TYPE vaultbridge_resolves_total counter\n"),
        "{classic}"
    );
    assert!(classic.contains("# HELP vaultbridge_resolves_total Definitions resolved"));
    assert!(classic.contains("# TYPE vaultbridge_backend_call_duration_seconds histogram\n"));
    assert!(classic.contains("# TYPE vaultbridge_build_info gauge\n"));
    assert!(classic.contains(r#"vaultbridge_resolves_total{cache="hit"} 1"#));
}
