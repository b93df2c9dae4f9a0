//! vaultbridge-bench: measures the real daemon (release build) against a baseline
//! tonic server measured in the same run, and prints a markdown table plus one JSON
//! line per scenario.
//!
//! The baseline is this binary in `baseline-server` mode: the same `Resolve` RPC,
//! answering with a fixed payload of the secret's size, on the same tokio and tonic
//! defaults. The load generator is the same for both, so a ratio to the baseline says
//! what the daemon's own work costs.
#![forbid(unsafe_code)]
// The report on stdout is this program's output.
#![allow(clippy::print_stdout)]

mod access;
mod baseline;
mod cli;
mod cold_misses;
mod daemon;
mod fake_secrets_manager;
mod http;
mod load;
mod plugin;
mod refresh_ahead;
mod report;
mod server;
mod stats;

use baseline::{baseline_server, start_baseline};
use clap::Parser;
use cli::{Args, Mode};
use daemon::{start_daemon, with_metrics, write_config, write_secrets};
use load::{Work, drive, interleaved, load, zipf_cdf};
use report::report;
use server::{Server, Transport, spawn, wait_serving};
use stats::Measurement;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;
use vaultbridge::client;
use vaultbridge::proto::v1::{ResolveBatchRequest, secrets_client::SecretsClient};

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match &args.mode {
        Some(Mode::BaselineServer {
            socket,
            tcp,
            payload,
        }) => {
            runtime.block_on(baseline_server(socket.clone(), *tcp, *payload));
        }
        Some(Mode::HttpBaselineServer { tcp, unix, payload }) => {
            runtime.block_on(http::http_baseline_server(*tcp, unix.clone(), *payload));
        }
        Some(Mode::PluginServer { socket, payload }) => {
            runtime.block_on(plugin::plugin_server(socket.clone(), *payload));
        }
        Some(Mode::Drive {
            address,
            name,
            requests,
            concurrency,
            connections,
            refresh,
        }) => runtime.block_on(drive(
            address,
            name,
            *requests,
            *concurrency,
            *connections,
            *refresh,
        )),
        None => runtime.block_on(run(args)),
    }
}

async fn run(args: Args) {
    assert!(
        args.daemon.exists(),
        "{} does not exist: build it with `cargo build --release` (scripts/bench does)",
        args.daemon.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    if args.only_http {
        let secrets = write_secrets(dir.path(), 1000, args.payload);
        let results = http::measure(&args, dir.path(), &secrets).await;
        report::rows(&args, &results);
        return;
    }
    let mut results: Vec<Measurement> = Vec::new();
    let work = Arc::new(Work::Resolve("bench".to_owned()));

    // 1. Baseline.
    let baseline = start_baseline(&args, dir.path()).await;

    // 2. Cache hit, and 3. mixed Zipf batches, on one daemon.
    let secrets = write_secrets(dir.path(), 1000, args.payload);
    let socket = dir.path().join("daemon.sock");
    let config = write_config(dir.path(), "daemon.yaml", &secrets, 1000, &socket);
    let (daemon, _) = start_daemon(&args, &config, &socket).await;
    let idle_rss = daemon.rss_mb();
    // The same config with `server.metrics`: the cost of counting, paired run by run.
    let metrics_socket = dir.path().join("daemon-metrics.sock");
    let metrics_config = with_metrics(&config, &socket, &metrics_socket);
    let (metered, _) = start_daemon(&args, &metrics_config, &metrics_socket).await;
    let mut metrics_cost = Vec::new();
    let mut baseline_runs = Vec::new();
    let mut daemon_runs = Vec::new();
    let highest = args.concurrency.iter().copied().max().unwrap_or(1);
    for transport in [Transport::Uds, Transport::Tcp] {
        for &concurrency in &args.concurrency {
            let mut contenders = vec![
                (&baseline, "baseline", work.clone()),
                (&daemon, "cache hit", work.clone()),
                (&metered, "cache hit, metrics on", work.clone()),
            ];
            // The same hit through the env backend, at the highest concurrency over the
            // socket: the difference is the file backend's change check (a statx per
            // resolve).
            if transport == Transport::Uds && concurrency == highest {
                contenders.push((
                    &daemon,
                    "cache hit, env backend",
                    Arc::new(Work::Resolve("bench-env".to_owned())),
                ));
            }
            let mut medians = interleaved(&contenders, transport, concurrency, &args).await;
            baseline_runs.push(medians.remove(0));
            metrics_cost.push((
                transport.name(),
                concurrency,
                medians[0].cpu_us_per_request,
                medians[1].cpu_us_per_request,
            ));
            daemon_runs.extend(medians);
        }
    }
    drop(baseline);
    drop(metered);
    results.extend(baseline_runs);
    results.extend(daemon_runs);
    let names: Arc<Vec<String>> = Arc::new((0..1000).map(|i| format!("s{i}")).collect());
    let zipf = Arc::new(Work::ZipfBatch {
        names,
        cdf: Arc::new(zipf_cdf(1000, 1.0)),
        size: 10,
    });
    results.push(
        load(
            &daemon,
            "mixed: ResolveBatch of 10, Zipf over 1,000",
            Transport::Uds,
            16,
            args.connections,
            args.duration,
            zipf,
        )
        .await,
    );
    // The cost of access rules and the audit trail on a cache hit, paired.
    results.extend(access::measure(&args, dir.path(), &secrets, &daemon).await);
    // The HTTP/1.1 face's cache hit, against an empty hyper server.
    results.extend(http::measure(&args, dir.path(), &secrets).await);
    // A hit and a miss through a plugin backend, against the file backend.
    if !args.skip_plugin {
        results.extend(plugin::measure(&args, dir.path(), &secrets).await);
    }
    drop(daemon);

    // 4. Cold misses with coalescing.
    results.push(cold_misses::measure(&args, dir.path()).await);

    // 5. Refresh ahead under steady reads, and 6. the backend calls it makes.
    results.extend(refresh_ahead::measure(&args, dir.path()).await);

    // 7. Memory with 100,000 cached definitions of 64-byte values.
    let large_rss = if args.skip_large {
        None
    } else {
        let secrets = write_secrets(dir.path(), 100_000, 64);
        let socket = dir.path().join("large.sock");
        let config = write_config(dir.path(), "large.yaml", &secrets, 100_000, &socket);
        let (daemon, _) = start_daemon(&args, &config, &socket).await;
        let loaded = daemon.rss_mb();
        let mut client = SecretsClient::new(
            client::channel(&daemon.address(Transport::Uds))
                .await
                .expect("connect"),
        );
        let all: Vec<String> = (0..100_000).map(|i| format!("s{i}")).collect();
        for chunk in all.chunks(256) {
            client
                .resolve_batch(ResolveBatchRequest {
                    names: chunk.to_vec(),
                    ..Default::default()
                })
                .await
                .expect("batch");
        }
        Some((loaded, daemon.rss_mb()))
    };

    // 8. Startup with the example config, median of 5.
    let mut startups = Vec::new();
    for run in 0..5 {
        let socket = dir.path().join(format!("startup-{run}.sock"));
        let started = Instant::now();
        let child = spawn(
            Command::new(&args.daemon)
                .arg("serve")
                .env("VAULTBRIDGE_SOCKET", &socket)
                .env_remove("VAULTBRIDGE_CONFIG"),
            args.server_workers,
        );
        let server = Server {
            child,
            socket,
            tcp: String::new(),
        };
        startups.push(wait_serving(&server.address(Transport::Uds), started).await);
    }
    startups.sort();
    let startup = startups[startups.len() / 2];

    report(&args, &results, idle_rss, large_rss, startup);
    println!(
        "\n| metrics on vs off, cache hit (same run, medians) | transport | concurrency | CPU µs/req off | CPU µs/req on | on / off |\n|---|---|---:|---:|---:|---:|"
    );
    for (transport, concurrency, off, on) in metrics_cost {
        println!(
            "| `server.metrics` | {transport} | {concurrency} | {off:.1} | {on:.1} | {:.3} |",
            on / off
        );
    }
}
