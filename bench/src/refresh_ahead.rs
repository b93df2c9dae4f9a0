//! Scenario 5, refresh ahead under steady reads, and scenario 6, the backend calls it
//! makes per definition and TTL window.
//!
//! One daemon on its AWS backend, against the fake Secrets Manager answering every
//! call after `--refresh-latency`. Its definitions: `reference`, with a TTL of 1 h,
//! which no run outlives, so reading it is a pure cache hit of this same daemon and
//! backend; and, for each N of `--refresh-definitions`, N definitions with
//! `--refresh-ttl`, which expires several times in a run. For each concurrency, each
//! round runs the reference and then each group, `--refresh-duration` each, the
//! clients reading the group's definitions in turn, so that every definition is read
//! every few milliseconds: a steady reader.

use crate::cli::Args;
use crate::daemon::{start_aws_daemon, write_aws_config};
use crate::fake_secrets_manager::{Calls, SlowSecretsManager};
use crate::load::{Work, closed_loop, connect};
use crate::server::{Server, Transport};
use crate::stats::{Measurement, RefreshFigures, median};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use vaultbridge::client;
use vaultbridge::proto::v1::{
    ResolveBatchRequest, ResolveRequest, resolve_result::Outcome, secrets_client::SecretsClient,
};

/// The most secret ids the daemon's AWS backend puts in one `BatchGetSecretValue`
/// (`vaultbridge_backend_aws::MAX_BATCH`, which the bench does not link).
pub(crate) const AWS_BATCH: usize = 20;

/// The reference is the first contender of every round.
const REFERENCE: usize = 0;

struct Contender {
    scenario: String,
    names: Arc<Vec<String>>,
    ttl: Duration,
    work: Arc<Work>,
}

/// One measured run and what the fake backend received during it.
struct RunFigures {
    measurement: Measurement,
    max_us: u32,
    slow_reads: u64,
    calls: Calls,
}

pub(crate) async fn measure(args: &Args, dir: &Path) -> Vec<Measurement> {
    if args.skip_refresh {
        return Vec::new();
    }
    assert!(
        !args.refresh_ttl.is_zero() && args.refresh_definitions.iter().all(|&n| n > 0),
        "--refresh-ttl must be above zero and every --refresh-definitions group hold one or more"
    );
    let backend = SlowSecretsManager::start(args.refresh_latency, args.payload).await;
    let contenders = contenders(args);
    let mut definitions = String::new();
    for contender in &contenders {
        for name in contender.names.iter() {
            definitions.push_str(&format!(
                "  {name}:\n    backend: slow\n    secret: {name}\n    ttl: {}ms\n",
                contender.ttl.as_millis()
            ));
        }
    }
    let socket = dir.join("refresh.sock");
    let config = write_aws_config(dir, "refresh.yaml", &socket, backend.address, &definitions);
    let daemon = start_aws_daemon(args, &config, &socket).await;
    let mut control = SecretsClient::new(
        client::channel(&daemon.address(Transport::Uds))
            .await
            .expect("connect"),
    );

    let mut results = Vec::new();
    for &concurrency in &args.refresh_concurrency {
        let mut runs: Vec<Vec<RunFigures>> = contenders.iter().map(|_| Vec::new()).collect();
        for _ in 0..args.repeat.max(1) {
            for (contender, runs) in contenders.iter().zip(&mut runs) {
                fill(&mut control, &contender.names).await;
                let run = run(args, &daemon, &backend, contender, concurrency).await;
                eprintln!(
                    "run: {} uds c={concurrency}: {:.0} req/s, {:.1} µs CPU/req, p99 {:.0} µs, max {} µs, {} reads slower than the backend, backend calls: {} GetSecretValue, {} BatchGetSecretValue ({} ids)",
                    contender.scenario,
                    run.measurement.rate(),
                    run.measurement.cpu_us_per_request,
                    run.measurement.p99_us,
                    run.max_us,
                    run.slow_reads,
                    run.calls.get,
                    run.calls.batch,
                    run.calls.batched_ids,
                );
                runs.push(run);
            }
        }
        let reference_p99: Vec<f64> = runs[REFERENCE]
            .iter()
            .map(|run| run.measurement.p99_us)
            .collect();
        for (index, (contender, runs)) in contenders.iter().zip(runs).enumerate() {
            results.push(summarize(
                args,
                contender,
                runs,
                (index != REFERENCE).then_some(reference_p99.as_slice()),
            ));
        }
    }
    if backend.counts().other > 0 {
        eprintln!(
            "warning: the daemon sent the fake Secrets Manager {} calls of operations it does not serve",
            backend.counts().other
        );
    }
    results
}

fn contenders(args: &Args) -> Vec<Contender> {
    let latency = args.refresh_latency.as_millis();
    let mut contenders = vec![Contender {
        scenario: format!("refresh reference: cache hit, ttl 1h, AWS backend {latency} ms"),
        names: Arc::new(vec!["reference".to_owned()]),
        ttl: Duration::from_secs(3600),
        work: Arc::new(Work::Resolve("reference".to_owned())),
    }];
    for &n in &args.refresh_definitions {
        let names: Arc<Vec<String>> = Arc::new((0..n).map(|i| format!("ra{n}-{i}")).collect());
        contenders.push(Contender {
            scenario: format!(
                "refresh ahead: {n} definition{}, ttl {}, AWS backend {latency} ms",
                if n == 1 { "" } else { "s" },
                short(args.refresh_ttl)
            ),
            work: Arc::new(Work::RoundRobin(names.clone())),
            names,
            ttl: args.refresh_ttl,
        });
    }
    contenders
}

/// `2s` or `1500ms`.
fn short(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Reads every definition of the group from the backend, so that each run starts on
/// values just fetched, as a steady reader's would after its first read, however long
/// the group was left unread before. These calls are not counted.
async fn fill(control: &mut SecretsClient<tonic::transport::Channel>, names: &[String]) {
    for chunk in names.chunks(256) {
        let answer = control
            .resolve_batch(ResolveBatchRequest {
                items: chunk
                    .iter()
                    .map(|name| ResolveRequest {
                        name: name.clone(),
                        refresh: true,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .await
            .expect("fill the refresh-ahead definitions");
        for result in answer.into_inner().results {
            assert!(
                matches!(result.outcome, Some(Outcome::Secret(_))),
                "filling `{}` failed: {:?}",
                result.name,
                result.outcome
            );
        }
    }
}

async fn run(
    args: &Args,
    daemon: &Server,
    backend: &SlowSecretsManager,
    contender: &Contender,
    concurrency: usize,
) -> RunFigures {
    let channels = connect(
        daemon,
        Transport::Uds,
        concurrency,
        args.connections,
        &contender.work,
    )
    .await;
    let before = backend.counts();
    let mut run = closed_loop(
        daemon,
        &channels,
        concurrency,
        args.refresh_duration,
        &contender.work,
    )
    .await;
    let calls = backend.counts().since(before);
    let latency_us = args.refresh_latency.as_micros();
    let slow_reads = run
        .latencies
        .iter()
        .filter(|&&latency| u128::from(latency) > latency_us)
        .count() as u64;
    let max_us = run.latencies.iter().copied().max().unwrap_or(0);
    RunFigures {
        measurement: Measurement {
            scenario: contender.scenario.clone(),
            transport: Transport::Uds.name(),
            concurrency,
            per_request: 1,
            ..Measurement::of_calls(&mut run.latencies, run.seconds, run.cpu, daemon)
        },
        max_us,
        slow_reads,
        calls,
    }
}

/// The medians of the contender's runs, as for the other scenarios, with the totals and
/// extremes of all its rounds, and its p99 against the reference's of the same round.
fn summarize(
    args: &Args,
    contender: &Contender,
    runs: Vec<RunFigures>,
    reference_p99: Option<&[f64]>,
) -> Measurement {
    let p99_vs_reference = reference_p99.map(|reference| {
        let mut ratios: Vec<f64> = runs
            .iter()
            .zip(reference)
            .map(|(run, reference)| run.measurement.p99_us / reference.max(1.0))
            .collect();
        ratios.sort_by(f64::total_cmp);
        (
            ratios[ratios.len() / 2],
            ratios[0],
            ratios[ratios.len() - 1],
        )
    });
    let figures = RefreshFigures {
        definitions: contender.names.len(),
        ttl: contender.ttl,
        backend_latency: args.refresh_latency,
        rounds: runs.len(),
        reads: runs.iter().map(|run| run.measurement.requests).sum(),
        max_us: f64::from(runs.iter().map(|run| run.max_us).max().unwrap_or(0)),
        slow_reads: runs.iter().map(|run| run.slow_reads).sum(),
        calls: runs
            .iter()
            .fold(Calls::default(), |total, run| total.add(run.calls)),
        windows: runs
            .iter()
            .map(|run| run.measurement.seconds / contender.ttl.as_secs_f64())
            .sum(),
        p99_vs_reference,
    };
    Measurement {
        refresh: Some(figures),
        ..median(runs.into_iter().map(|run| run.measurement).collect())
    }
}
