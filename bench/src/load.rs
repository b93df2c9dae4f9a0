use crate::cli::Args;
use crate::server::{Server, Transport};
use crate::stats::{Measurement, Paired, median};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use vaultbridge::client::{self, Address};
use vaultbridge::proto::v1::{ResolveBatchRequest, ResolveRequest, secrets_client::SecretsClient};

pub(crate) async fn drive(
    address: &str,
    name: &str,
    requests: usize,
    concurrency: usize,
    connections: usize,
    refresh: bool,
) {
    let address = if address.starts_with("http://") {
        Address::Tcp(address.to_owned())
    } else {
        Address::Unix(PathBuf::from(address))
    };
    let mut channels = Vec::new();
    for _ in 0..connections.max(1) {
        channels.push(client::channel(&address).await.expect("connect"));
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let concurrency = concurrency.max(1);
    for task in 0..concurrency {
        // Spread `requests` exactly: the first `requests % concurrency` tasks send one more.
        let share = requests / concurrency + usize::from(task < requests % concurrency);
        let mut client = SecretsClient::new(channels[task % channels.len()].clone());
        let work = if refresh {
            Work::Refresh(Arc::new(vec![name.to_owned()]))
        } else {
            Work::Resolve(name.to_owned())
        };
        tasks.spawn(async move {
            for _ in 0..share {
                call(&mut client, &work, &mut 1).await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("drive task");
    }
    println!("{requests} requests in {:?}", started.elapsed());
}

pub(crate) enum Work {
    Resolve(String),
    /// `Resolve` with `authorization: Bearer <token>`, for a daemon whose clients need one.
    ResolveWithToken {
        name: String,
        token: String,
    },
    /// One `Resolve` a call, cycling through `names` (each client from its own place).
    RoundRobin(Arc<Vec<String>>),
    /// As `RoundRobin`, with `refresh: true`: every call reads the backend, a miss by
    /// construction. Concurrent clients need many names: concurrent refreshes of one
    /// definition share one backend call.
    Refresh(Arc<Vec<String>>),
    /// Batches of names drawn from a Zipf distribution over `names`.
    ZipfBatch {
        names: Arc<Vec<String>>,
        cdf: Arc<Vec<f64>>,
        size: usize,
    },
}

impl Work {
    fn per_request(&self) -> usize {
        match self {
            Self::Resolve(_)
            | Self::ResolveWithToken { .. }
            | Self::RoundRobin(_)
            | Self::Refresh(_) => 1,
            Self::ZipfBatch { size, .. } => *size,
        }
    }
}

pub(crate) fn zipf_cdf(n: usize, exponent: f64) -> Vec<f64> {
    let weights: Vec<f64> = (1..=n).map(|k| 1.0 / (k as f64).powf(exponent)).collect();
    let total: f64 = weights.iter().sum();
    let mut running = 0.0;
    weights
        .iter()
        .map(|w| {
            running += w / total;
            running
        })
        .collect()
}

/// xorshift64*: deterministic and cheap; quality is not the point here.
fn next_random(state: &mut u64) -> f64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
}

pub(crate) async fn load(
    server: &Server,
    scenario: &str,
    transport: Transport,
    concurrency: usize,
    connections: usize,
    duration: Duration,
    work: Arc<Work>,
) -> Measurement {
    let run = Load {
        transport,
        concurrency,
        connections,
        duration,
    };
    run.measure(server, scenario, work, None).await
}

/// One closed-loop run's shape.
struct Load {
    transport: Transport,
    concurrency: usize,
    connections: usize,
    duration: Duration,
}

impl Load {
    /// Connects, warms up, and measures one run; when given, also reads the CPU time
    /// `plugin` (a process the server calls) used over the measured part.
    async fn measure(
        &self,
        server: &Server,
        scenario: &str,
        work: Arc<Work>,
        plugin: Option<&Server>,
    ) -> Measurement {
        let channels = connect(
            server,
            self.transport,
            self.concurrency,
            self.connections,
            &work,
        )
        .await;
        let plugin_before = plugin.map(Server::cpu);
        let mut run = closed_loop(server, &channels, self.concurrency, self.duration, &work).await;
        let measured = Measurement::of_calls(&mut run.latencies, run.seconds, run.cpu, server);
        let plugin_cpu = plugin.zip(plugin_before).map(|(plugin, before)| {
            plugin.cpu().saturating_sub(before).as_secs_f64() * 1e6
                / measured.requests.max(1) as f64
        });
        Measurement {
            scenario: scenario.to_owned(),
            transport: self.transport.name(),
            concurrency: self.concurrency,
            per_request: work.per_request(),
            plugin_cpu_us_per_request: plugin_cpu,
            ..measured
        }
    }
}

/// The connections a run spreads its load over, warmed with a few calls each.
pub(crate) async fn connect(
    server: &Server,
    transport: Transport,
    concurrency: usize,
    connections: usize,
    work: &Work,
) -> Vec<Channel> {
    let address = server.address(transport);
    let mut channels: Vec<Channel> = Vec::new();
    for _ in 0..connections.min(concurrency).max(1) {
        channels.push(client::channel(&address).await.expect("connect"));
    }
    // Warm the connections and the server before measuring.
    for channel in &channels {
        for _ in 0..50 {
            call(&mut SecretsClient::new(channel.clone()), work, &mut 1).await;
        }
    }
    channels
}

/// What one closed-loop run saw: every call's latency in µs, how long the run took, and
/// the server's CPU time over it.
pub(crate) struct Run {
    pub(crate) latencies: Vec<u32>,
    pub(crate) seconds: f64,
    pub(crate) cpu: Duration,
}

/// `concurrency` clients over `channels`, each sending its next call as soon as the
/// last one returns, for `duration`.
pub(crate) async fn closed_loop(
    server: &Server,
    channels: &[Channel],
    concurrency: usize,
    duration: Duration,
    work: &Arc<Work>,
) -> Run {
    let cpu_before = server.cpu();
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..concurrency {
        let mut client = SecretsClient::new(channels[task % channels.len()].clone());
        let work = work.clone();
        tasks.spawn(async move {
            let mut latencies: Vec<u32> = Vec::with_capacity(1 << 16);
            let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (task as u64 + 1);
            while Instant::now() < deadline {
                let began = Instant::now();
                call(&mut client, &work, &mut seed).await;
                latencies.push(u32::try_from(began.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
            latencies
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done.expect("load task"));
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = server.cpu().saturating_sub(cpu_before);
    Run {
        latencies,
        seconds,
        cpu,
    }
}

/// Each contender's median over `args.repeat` runs of one transport and concurrency,
/// the contenders taking turns run by run, so that a drift of the machine's speed
/// (other tenants, frequency, a background job) lands on all of them alike.
pub(crate) async fn interleaved(
    contenders: &[(&Server, &str, Arc<Work>)],
    transport: Transport,
    concurrency: usize,
    args: &Args,
) -> Vec<Measurement> {
    interleaved_with_plugin(contenders, transport, concurrency, args, None).await
}

/// As [`interleaved`], each run also reading the CPU time of `plugin` when given.
pub(crate) async fn interleaved_with_plugin(
    contenders: &[(&Server, &str, Arc<Work>)],
    transport: Transport,
    concurrency: usize,
    args: &Args,
    plugin: Option<&Server>,
) -> Vec<Measurement> {
    let mut runs: Vec<Vec<Measurement>> = vec![Vec::new(); contenders.len()];
    for _ in 0..args.repeat.max(1) {
        for ((server, scenario, work), runs) in contenders.iter().zip(&mut runs) {
            let shape = Load {
                transport,
                concurrency,
                connections: args.connections,
                duration: args.duration,
            };
            let run = shape.measure(server, scenario, work.clone(), plugin).await;
            // Each run on stderr, to see the spread behind a median.
            let plugin_cpu = run
                .plugin_cpu_us_per_request
                .map(|cpu| format!(", plugin {cpu:.1} µs CPU/req"))
                .unwrap_or_default();
            eprintln!(
                "run: {} {} c={}: {:.0} req/s, {:.1} µs CPU/req, p50 {:.0} µs, p99 {:.0} µs{plugin_cpu}",
                run.scenario,
                run.transport,
                run.concurrency,
                run.rate(),
                run.cpu_us_per_request,
                run.p50_us,
                run.p99_us
            );
            runs.push(run);
        }
    }
    let baseline_runs = runs[0].clone();
    runs.into_iter()
        .enumerate()
        .map(|(index, runs)| {
            let paired = (index > 0).then(|| Paired::of(&runs, &baseline_runs));
            Measurement {
                paired,
                ..median(runs)
            }
        })
        .collect()
}

pub(crate) async fn call(client: &mut SecretsClient<Channel>, work: &Work, seed: &mut u64) {
    match work {
        Work::Resolve(name) => {
            client
                .resolve(ResolveRequest {
                    name: name.clone(),
                    ..Default::default()
                })
                .await
                .expect("resolve");
        }
        Work::ResolveWithToken { name, token } => {
            let mut request = tonic::Request::new(ResolveRequest {
                name: name.clone(),
                ..Default::default()
            });
            request.metadata_mut().insert(
                "authorization",
                format!("Bearer {token}").parse().expect("a valid header"),
            );
            client.resolve(request).await.expect("resolve with a token");
        }
        Work::RoundRobin(names) | Work::Refresh(names) => {
            *seed = seed.wrapping_add(1);
            let index = usize::try_from(*seed % names.len().max(1) as u64).unwrap_or(0);
            client
                .resolve(ResolveRequest {
                    name: names[index].clone(),
                    refresh: matches!(work, Work::Refresh(_)),
                    ..Default::default()
                })
                .await
                .expect("resolve");
        }
        Work::ZipfBatch { names, cdf, size } => {
            let batch = (0..*size)
                .map(|_| {
                    let draw = next_random(seed);
                    let index = cdf
                        .partition_point(|&edge| edge < draw)
                        .min(names.len() - 1);
                    names[index].clone()
                })
                .collect();
            client
                .resolve_batch(ResolveBatchRequest {
                    names: batch,
                    ..Default::default()
                })
                .await
                .expect("resolve batch");
        }
    }
}
