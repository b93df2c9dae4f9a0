use crate::cli::Args;
use crate::daemon::{start_aws_daemon, write_aws_config};
use crate::fake_secrets_manager::SlowSecretsManager;
use crate::load::{Work, call};
use crate::server::Transport;
use crate::stats::Measurement;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use tonic::transport::Channel;
use vaultbridge::client;
use vaultbridge::proto::v1::{self as pb, secrets_client::SecretsClient};

/// Scenario 4: rounds of `concurrency` simultaneous resolves of one definition just
/// invalidated, against a backend that takes `latency` per call.
pub(crate) async fn measure(args: &Args, dir: &Path) -> Measurement {
    let backend = SlowSecretsManager::start(args.backend_latency, args.payload).await;
    let socket = dir.join("cold.sock");
    let config = write_aws_config(
        dir,
        "cold.yaml",
        &socket,
        backend.address,
        "  cold:\n    backend: slow\n    secret: cold\n",
    );
    let daemon = start_aws_daemon(args, &config, &socket).await;
    let mut channels: Vec<Channel> = Vec::new();
    for _ in 0..args.connections.max(1) {
        channels.push(
            client::channel(&daemon.address(Transport::Uds))
                .await
                .expect("connect"),
        );
    }
    let mut control = SecretsClient::new(channels[0].clone());
    let invalidate = || pb::InvalidateRequest {
        target: Some(pb::invalidate_request::Target::Name("cold".to_owned())),
    };
    // The first fill also signs in and opens the backend connection; keep it out.
    let work = Work::Resolve("cold".to_owned());
    call(&mut control, &work, &mut 1).await;

    let mut latencies: Vec<u32> = Vec::new();
    let mut calls_per_round: Vec<u64> = Vec::new();
    let cpu_before = daemon.cpu();
    let mut seconds = 0.0;
    for _ in 0..args.cold_rounds {
        control.invalidate(invalidate()).await.expect("invalidate");
        let calls_before = backend.calls();
        let barrier = Arc::new(tokio::sync::Barrier::new(args.cold_concurrency));
        let mut tasks = tokio::task::JoinSet::new();
        let started = Instant::now();
        for task in 0..args.cold_concurrency {
            let mut client = SecretsClient::new(channels[task % channels.len()].clone());
            let barrier = barrier.clone();
            tasks.spawn(async move {
                barrier.wait().await;
                let began = Instant::now();
                call(&mut client, &Work::Resolve("cold".to_owned()), &mut 1).await;
                u32::try_from(began.elapsed().as_micros()).unwrap_or(u32::MAX)
            });
        }
        while let Some(done) = tasks.join_next().await {
            latencies.push(done.expect("cold resolve"));
        }
        seconds += started.elapsed().as_secs_f64();
        calls_per_round.push(backend.calls() - calls_before);
    }
    let cpu = daemon.cpu().saturating_sub(cpu_before);
    Measurement {
        scenario: format!(
            "cold misses: {} at once, backend {} ms, {} rounds",
            args.cold_concurrency,
            args.backend_latency.as_millis(),
            args.cold_rounds
        ),
        transport: Transport::Uds.name(),
        concurrency: args.cold_concurrency,
        backend_calls_per_round: Some((
            calls_per_round.iter().copied().min().unwrap_or(0),
            calls_per_round.iter().copied().max().unwrap_or(0),
        )),
        ..Measurement::of_calls(&mut latencies, seconds, cpu, &daemon)
    }
}
