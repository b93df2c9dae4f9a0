//! `server.metrics`: the real daemon scraped over HTTP, parsed by the Prometheus
//! project's Python parsers (classic text and OpenMetrics, which must agree), with
//! counters that move by exactly the traffic sent.

use crate::harness::{Daemon, Setup, resolve};
use crate::python::python;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::Command;
use tonic::Code;
use vaultbridge::proto::v1::{ListDefinitionsRequest, ResolveBatchRequest};

/// A series: its sample name and labels, as the parser read them.
type Series = (String, BTreeMap<String, String>);

/// One scrape through `tests/python/scrape_metrics.py`.
pub(crate) struct Scrape {
    pub content_type: String,
    pub samples: BTreeMap<Series, (f64, String)>,
}

impl Scrape {
    pub(crate) fn of(address: SocketAddr) -> Self {
        let output = Command::new(python())
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/python/scrape_metrics.py"
            ))
            .arg(format!("http://{address}/metrics"))
            .output()
            .expect("run the scraper");
        assert!(
            output.status.success(),
            "the scraper failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
        let samples = report["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|sample| {
                let labels = sample[1]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                    .collect();
                (
                    (sample[0].as_str().unwrap().to_owned(), labels),
                    (
                        sample[2].as_f64().unwrap(),
                        sample[3].as_str().unwrap().to_owned(),
                    ),
                )
            })
            .collect();
        Self {
            content_type: report["content_type"].as_str().unwrap().to_owned(),
            samples,
        }
    }

    /// The value of `name{labels}`; 0 for a series not there yet.
    pub(crate) fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .get(&series(name, labels))
            .map_or(0.0, |(value, _)| *value)
    }

    pub(crate) fn kind(&self, name: &str, labels: &[(&str, &str)]) -> Option<&str> {
        self.samples
            .get(&series(name, labels))
            .map(|(_, kind)| kind.as_str())
    }
}

fn series(name: &str, labels: &[(&str, &str)]) -> Series {
    (
        name.to_owned(),
        labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
}

/// `GET path` over plain HTTP/1.0: (status line, body). Cheap enough to poll.
pub(crate) fn http_get(address: SocketAddr, path: &str) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(address).expect("connect to /metrics");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: metrics\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

/// The value of one sample line, written exactly as `series`, in a classic scrape.
pub(crate) fn sample_in(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

fn with_metrics(setup: &Setup, per_definition: bool, jira: &str) -> String {
    setup
        .config_text()
        .replace(
            "  shutdown_grace: 5s\n",
            &format!(
                "  shutdown_grace: 5s\n  metrics:\n    address: 127.0.0.1:0\n    per_definition: {per_definition}\n"
            ),
        )
        .replace("  ttl: 10m\n", "  ttl: 10m\n  negative_ttl: 1h\n")
        + jira
}

const SECRETS: &str = "vaultbridge.v1.Secrets";

#[tokio::test]
async fn scraped_counters_move_by_exactly_the_traffic_sent() {
    let expires = time::OffsetDateTime::now_utc().date() + time::Duration::days(30);
    let jira = format!(
        "jira:\n  connections:\n    jira-dev:\n      url: https://example.atlassian.net\n      email: dev@example.com\n      token: jira-api-token\n      expires_at: {expires}\n"
    );
    let setup = Setup::new();
    let config = with_metrics(&setup, false, &jira);
    let daemon: Daemon = setup.start_with_config(&config);
    let address = daemon.metrics_address();
    let before = Scrape::of(address);
    assert!(
        before.content_type.starts_with("text/plain; version=0.0.4"),
        "{}",
        before.content_type
    );

    let mut client = daemon.client().await;
    for _ in 0..3 {
        resolve(&mut client, "plain").await.unwrap();
    }
    for _ in 0..2 {
        let status = resolve(&mut client, "missing-entry").await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
    }
    let status = resolve(&mut client, "no-such-definition")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let batch = client
        .resolve_batch(ResolveBatchRequest {
            names: vec!["plain".into(), "pem".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(batch.results.len(), 2);
    client
        .list_definitions(ListDefinitionsRequest {})
        .await
        .unwrap();

    let after = Scrape::of(address);
    let moved = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    let requests = |method: &str, code: &str| {
        moved(
            "vaultbridge_grpc_requests_total",
            &[("service", SECRETS), ("method", method), ("code", code)],
        )
    };
    assert_eq!(requests("Resolve", "OK"), 3.0);
    assert_eq!(requests("Resolve", "NOT_FOUND"), 3.0);
    assert_eq!(requests("ResolveBatch", "OK"), 1.0);
    assert_eq!(requests("ListDefinitions", "OK"), 1.0);
    assert_eq!(
        after.kind(
            "vaultbridge_grpc_requests_total",
            &[("service", SECRETS), ("method", "Resolve"), ("code", "OK")]
        ),
        Some("counter"),
        "the parser read the family as a counter"
    );
    let resolves = |cache: &str| moved("vaultbridge_resolves_total", &[("cache", cache)]);
    // plain: a miss then two hits, and a hit in the batch; pem: a miss in the batch;
    // missing-entry: a miss (the backend said not found), then the remembered answer.
    assert_eq!(resolves("hit"), 3.0);
    assert_eq!(resolves("miss"), 3.0);
    assert_eq!(resolves("negative"), 1.0);
    assert_eq!(resolves("stale"), 0.0);
    let calls = |outcome: &str| {
        moved(
            "vaultbridge_backend_calls_total",
            &[
                ("backend", "local"),
                ("operation", "fetch"),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(calls("ok"), 2.0);
    assert_eq!(calls("not_found"), 1.0);
    assert_eq!(
        moved(
            "vaultbridge_backend_call_duration_seconds_count",
            &[("backend", "local"), ("operation", "fetch")]
        ),
        3.0
    );
    for method in ["Resolve", "ResolveBatch", "ListDefinitions"] {
        assert_eq!(
            after.value(
                "vaultbridge_grpc_requests_in_flight",
                &[("service", SECRETS), ("method", method)]
            ),
            0.0
        );
    }
    assert_eq!(
        after.value(
            "vaultbridge_backend_calls_in_flight",
            &[("backend", "local")]
        ),
        0.0
    );
    assert_eq!(
        after.value(
            "vaultbridge_backend_breaker_state",
            &[("backend", "local"), ("state", "closed")]
        ),
        1.0
    );
    let pem = "-----BEGIN KEY-----\nAAAA-e2e-pem-body\n-----END KEY-----\n";
    assert_eq!(after.value("vaultbridge_cache_entries", &[]), 2.0);
    assert_eq!(
        after.value("vaultbridge_cache_values_bytes", &[]),
        ("plain-e2e-value".len() + pem.len()) as f64
    );
    assert_eq!(
        after.value(
            "vaultbridge_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    assert_eq!(
        after.kind(
            "vaultbridge_config_reloads_total",
            &[("outcome", "success")]
        ),
        Some("counter")
    );
    assert_eq!(
        after.value(
            "vaultbridge_jira_connection_state",
            &[("connection", "jira-dev"), ("state", "unknown")]
        ),
        1.0
    );
    let days_left = (expires - time::OffsetDateTime::now_utc().date()).whole_days();
    assert_eq!(
        after.value(
            "vaultbridge_jira_token_expiry_days",
            &[("connection", "jira-dev")]
        ),
        days_left as f64
    );
    // No label takes a value from a request, and nothing secret is in the scrape.
    let (_, body) = http_get(address, "/metrics");
    for leaked in [
        "no-such-definition",
        "plain-e2e-value",
        "AAAA-e2e-pem-body",
        "definition=",
    ] {
        assert!(!body.contains(leaked), "`{leaked}` in:\n{body}");
    }
    let (status, _) = http_get(address, "/");
    assert!(status.contains(" 404 "), "{status}");
    let (status, _) = http_get(address, "/metrics/x");
    assert!(status.contains(" 404 "), "{status}");
}

#[tokio::test]
async fn per_definition_adds_the_definition_label() {
    let setup = Setup::new();
    let config = with_metrics(&setup, true, "");
    let daemon = setup.start_with_config(&config);
    let mut client = daemon.client().await;
    for _ in 0..2 {
        resolve(&mut client, "plain").await.unwrap();
    }
    let scrape = Scrape::of(daemon.metrics_address());
    let count = |cache: &str, definition: &str| {
        scrape.value(
            "vaultbridge_resolves_total",
            &[("cache", cache), ("definition", definition)],
        )
    };
    assert_eq!(count("miss", "plain"), 1.0);
    assert_eq!(count("hit", "plain"), 1.0);
    assert_eq!(count("hit", "pem"), 0.0);
    assert_eq!(
        scrape.value("vaultbridge_resolves_total", &[("cache", "hit")]),
        0.0
    );
}
