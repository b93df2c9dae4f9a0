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

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use vaultbridge::client::{self, Address};
use vaultbridge::proto::v1::{
    self as pb, ResolveBatchRequest, ResolveRequest,
    secrets_client::SecretsClient,
    secrets_server::{Secrets, SecretsServer},
};

#[derive(Debug, Parser)]
#[command(about = "Benchmarks the vaultbridge daemon against a baseline tonic server")]
struct Args {
    /// How long each load run lasts.
    #[arg(long, default_value = "3s", value_parser = humantime_duration)]
    duration: Duration,
    /// HTTP/2 connections the load is spread over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Runs per measurement; the table shows the median. The baseline and the daemon
    /// take turns.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Concurrency levels for the single-resolve scenarios.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    /// The secret's size in bytes.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// The daemon binary (a release build).
    #[arg(long, default_value = "target/release/vaultbridge")]
    daemon: PathBuf,
    /// Skip the 100,000-definition memory scenario (it takes a while to load).
    #[arg(long)]
    skip_large: bool,
    /// Concurrent resolves of one uncached definition per cold-miss round.
    #[arg(long, default_value_t = 1000)]
    cold_concurrency: usize,
    /// Cold-miss rounds (the definition is invalidated before each).
    #[arg(long, default_value_t = 20)]
    cold_rounds: usize,
    /// Tokio worker threads for both servers (TOKIO_WORKER_THREADS); default: one per
    /// core. The same value goes to the daemon and the baseline, so a tuning is always
    /// measured against the baseline given the same tuning.
    #[arg(long)]
    server_workers: Option<usize>,
    /// The slow backend's latency per call in the cold-miss scenario.
    #[arg(long, default_value = "5ms", value_parser = humantime_duration)]
    backend_latency: Duration,
    #[command(subcommand)]
    mode: Option<Mode>,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Internal: serve the baseline on a socket and a TCP port until killed.
    BaselineServer {
        #[arg(long)]
        socket: PathBuf,
        #[arg(long)]
        tcp: std::net::SocketAddr,
        #[arg(long)]
        payload: usize,
    },
    /// Sends a fixed number of `Resolve` calls to a running server, for profiling it
    /// (scripts/profile runs the daemon and the baseline under callgrind with this).
    Drive {
        /// A Unix socket path, or http://host:port.
        #[arg(long)]
        address: String,
        #[arg(long, default_value = "bench")]
        name: String,
        #[arg(long)]
        requests: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, default_value_t = 4)]
        connections: usize,
    },
}

fn humantime_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 5s"))?;
    match unit {
        "s" | "" => Ok(Duration::from_secs(number)),
        "ms" => Ok(Duration::from_millis(number)),
        other => Err(format!("unknown unit `{other}`; use s or ms")),
    }
}

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
        Some(Mode::Drive {
            address,
            name,
            requests,
            concurrency,
            connections,
        }) => runtime.block_on(drive(address, name, *requests, *concurrency, *connections)),
        None => runtime.block_on(run(args)),
    }
}

async fn drive(address: &str, name: &str, requests: usize, concurrency: usize, connections: usize) {
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
        let work = Work::Resolve(name.to_owned());
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

/// The baseline: an empty unary handler returning the same message a cache hit does.
#[derive(Debug, Clone)]
struct Baseline {
    payload: Arc<Vec<u8>>,
    text: Arc<String>,
}

#[tonic::async_trait]
impl Secrets for Baseline {
    async fn resolve(
        &self,
        request: tonic::Request<ResolveRequest>,
    ) -> Result<tonic::Response<pb::ResolveResponse>, tonic::Status> {
        Ok(tonic::Response::new(pb::ResolveResponse {
            secret: Some(pb::Secret {
                name: request.into_inner().name,
                value: self.payload.to_vec(),
                text: Some(self.text.to_string()),
                backend: "baseline".into(),
                fetched_at: Some(prost_types::Timestamp::from(
                    std::time::SystemTime::UNIX_EPOCH,
                )),
                cache: pb::CacheOutcome::Hit as i32,
                ..pb::Secret::default()
            }),
        }))
    }

    async fn resolve_batch(
        &self,
        _request: tonic::Request<ResolveBatchRequest>,
    ) -> Result<tonic::Response<pb::ResolveBatchResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("baseline"))
    }

    async fn list_definitions(
        &self,
        _request: tonic::Request<pb::ListDefinitionsRequest>,
    ) -> Result<tonic::Response<pb::ListDefinitionsResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("baseline"))
    }

    async fn invalidate(
        &self,
        _request: tonic::Request<pb::InvalidateRequest>,
    ) -> Result<tonic::Response<pb::InvalidateResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("baseline"))
    }
}

async fn baseline_server(socket: PathBuf, tcp: std::net::SocketAddr, payload: usize) {
    let text = "x".repeat(payload);
    let service = SecretsServer::new(Baseline {
        payload: Arc::new(text.clone().into_bytes()),
        text: Arc::new(text),
    });
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let _ = std::fs::remove_file(&socket);
    let unix = tokio::net::UnixListener::bind(&socket).expect("bind the baseline socket");
    let tcp = tokio::net::TcpListener::bind(tcp)
        .await
        .expect("bind the baseline port");
    let routes = tonic::service::Routes::new(service).add_service(health_service);
    let over_unix = tonic::transport::Server::builder()
        .add_routes(routes.clone())
        .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(unix));
    let over_tcp = tonic::transport::Server::builder()
        .add_routes(routes)
        .serve_with_incoming(
            tonic::transport::server::TcpIncoming::from(tcp).with_nodelay(Some(true)),
        );
    let _ = tokio::join!(over_unix, over_tcp);
}

/// A server process under measurement; killed when dropped.
struct Server {
    child: Child,
    socket: PathBuf,
    tcp: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn address(&self, transport: Transport) -> Address {
        match transport {
            Transport::Uds => Address::Unix(self.socket.clone()),
            Transport::Tcp => Address::Tcp(format!("http://{}", self.tcp)),
        }
    }

    /// User plus system CPU time of the process so far.
    fn cpu(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which is in parentheses and may hold spaces).
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let ticks: u64 = [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
            .sum();
        let per_second = rustix::param::clock_ticks_per_second().max(1);
        Duration::from_secs_f64(ticks as f64 / per_second as f64)
    }

    fn rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Uds,
    Tcp,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Self::Uds => "uds",
            Self::Tcp => "tcp",
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

async fn wait_serving(address: &Address, started: Instant) -> Duration {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    loop {
        if let Ok(channel) = client::channel(address).await {
            let answer = HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await;
            if answer.is_ok_and(|answer| answer.get_ref().status == 1) {
                return started.elapsed();
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "server did not become ready at {address}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// One measured run.
#[derive(Debug, Clone)]
struct Measurement {
    scenario: String,
    transport: &'static str,
    concurrency: usize,
    /// Secrets per request (10 for ResolveBatch of 10).
    per_request: usize,
    requests: u64,
    seconds: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    cpu_us_per_request: f64,
    rss_mb: f64,
    /// Cold misses only: the fewest and the most backend calls in one round.
    backend_calls_per_round: Option<(u64, u64)>,
    /// Against the baseline run just before each run: the medians of those ratios.
    paired: Option<Paired>,
}

/// Ratios of a run to the baseline run of the same round. Pairing runs that are
/// seconds apart cancels most of the machine's drift, which a ratio of two medians
/// does not.
#[derive(Debug, Clone, Copy)]
struct Paired {
    rate: f64,
    cpu: f64,
    cpu_lowest: f64,
    cpu_highest: f64,
}

impl Measurement {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
}

enum Work {
    Resolve(String),
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
            Self::Resolve(_) => 1,
            Self::ZipfBatch { size, .. } => *size,
        }
    }
}

fn zipf_cdf(n: usize, exponent: f64) -> Vec<f64> {
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

async fn load(
    server: &Server,
    scenario: &str,
    transport: Transport,
    concurrency: usize,
    connections: usize,
    duration: Duration,
    work: Arc<Work>,
) -> Measurement {
    let address = server.address(transport);
    let mut channels: Vec<Channel> = Vec::new();
    for _ in 0..connections.min(concurrency).max(1) {
        channels.push(client::channel(&address).await.expect("connect"));
    }
    // Warm the connections and the server before measuring.
    for channel in &channels {
        for _ in 0..50 {
            call(&mut SecretsClient::new(channel.clone()), &work, &mut 1).await;
        }
    }
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
    Measurement {
        scenario: scenario.to_owned(),
        transport: transport.name(),
        concurrency,
        per_request: work.per_request(),
        ..Measurement::of_calls(&mut latencies, seconds, cpu, server)
    }
}

impl Measurement {
    /// The figures of calls that took `latencies` (µs) within `seconds`, while the
    /// server used `cpu`; the caller names the scenario.
    fn of_calls(latencies: &mut [u32], seconds: f64, cpu: Duration, server: &Server) -> Self {
        let [p50_us, p99_us, p999_us] = percentiles(latencies, [0.50, 0.99, 0.999]);
        let requests = latencies.len() as u64;
        Self {
            scenario: String::new(),
            transport: "",
            concurrency: 0,
            per_request: 1,
            requests,
            seconds,
            p50_us,
            p99_us,
            p999_us,
            cpu_us_per_request: cpu.as_secs_f64() * 1e6 / requests.max(1) as f64,
            rss_mb: server.rss_mb(),
            backend_calls_per_round: None,
            paired: None,
        }
    }
}

fn percentiles<const N: usize>(latencies: &mut [u32], points: [f64; N]) -> [f64; N] {
    latencies.sort_unstable();
    points.map(|p| {
        let index =
            ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len().max(1)) - 1;
        latencies.get(index).copied().unwrap_or(0) as f64
    })
}

/// Each contender's median over `args.repeat` runs of one transport and concurrency,
/// the contenders taking turns run by run, so that a drift of the machine's speed
/// (other tenants, frequency, a background job) lands on all of them alike.
async fn interleaved(
    contenders: &[(&Server, &str, Arc<Work>)],
    transport: Transport,
    concurrency: usize,
    args: &Args,
) -> Vec<Measurement> {
    let mut runs: Vec<Vec<Measurement>> = vec![Vec::new(); contenders.len()];
    for _ in 0..args.repeat.max(1) {
        for ((server, scenario, work), runs) in contenders.iter().zip(&mut runs) {
            let run = load(
                server,
                scenario,
                transport,
                concurrency,
                args.connections,
                args.duration,
                work.clone(),
            );
            let run = run.await;
            // Each run on stderr, to see the spread behind a median.
            eprintln!(
                "run: {} {} c={}: {:.0} req/s, {:.1} µs CPU/req, p99 {:.0} µs",
                run.scenario,
                run.transport,
                run.concurrency,
                run.rate(),
                run.cpu_us_per_request,
                run.p99_us
            );
            runs.push(run);
        }
    }
    let baseline_runs = runs[0].clone();
    runs.into_iter()
        .enumerate()
        .map(|(index, runs)| {
            let paired = (index > 0).then(|| {
                let mut rates: Vec<f64> = Vec::new();
                let mut cpus: Vec<f64> = Vec::new();
                for (run, baseline) in runs.iter().zip(&baseline_runs) {
                    rates.push(run.rate() / baseline.rate());
                    cpus.push(run.cpu_us_per_request / baseline.cpu_us_per_request);
                }
                rates.sort_by(f64::total_cmp);
                cpus.sort_by(f64::total_cmp);
                Paired {
                    rate: rates[rates.len() / 2],
                    cpu: cpus[cpus.len() / 2],
                    cpu_lowest: cpus[0],
                    cpu_highest: cpus[cpus.len() - 1],
                }
            });
            Measurement {
                paired,
                ..median(runs)
            }
        })
        .collect()
}

/// Every figure is the median of the runs' figures (each taken on its own).
fn median(runs: Vec<Measurement>) -> Measurement {
    let middle = |figure: fn(&Measurement) -> f64| {
        let mut values: Vec<f64> = runs.iter().map(figure).collect();
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or(0.0)
    };
    let rate = middle(Measurement::rate);
    let mut result = runs.first().cloned().expect("at least one run");
    result.requests = rate.round() as u64;
    result.seconds = 1.0;
    result.p50_us = middle(|m| m.p50_us);
    result.p99_us = middle(|m| m.p99_us);
    result.p999_us = middle(|m| m.p999_us);
    result.cpu_us_per_request = middle(|m| m.cpu_us_per_request);
    result.rss_mb = middle(|m| m.rss_mb);
    result
}

async fn call(client: &mut SecretsClient<Channel>, work: &Work, seed: &mut u64) {
    match work {
        Work::Resolve(name) => {
            client
                .resolve(ResolveRequest { name: name.clone() })
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
                .resolve_batch(ResolveBatchRequest { names: batch })
                .await
                .expect("resolve batch");
        }
    }
}

/// The slow backend of the cold-miss scenario: a Secrets Manager endpoint that answers
/// `GetSecretValue` after a fixed delay and counts every call. The daemon reaches it
/// through its real AWS backend and SDK (request signing, retries, connection pool);
/// only the service behind the socket is this stand-in, because the delay must be
/// exact and moto adds its own, variable, milliseconds.
struct SlowSecretsManager {
    address: std::net::SocketAddr,
    calls: Arc<std::sync::atomic::AtomicU64>,
}

impl SlowSecretsManager {
    async fn start(latency: Duration, payload: usize) -> Self {
        use http_body_util::{BodyExt, Full};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the slow backend");
        let address = listener.local_addr().expect("its address");
        let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let answer = bytes::Bytes::from(
            serde_json::json!({
                "ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:cold-AbCdEf",
                "Name": "cold",
                "VersionId": "00000000-0000-0000-0000-000000000001",
                "SecretString": "c".repeat(payload),
                "VersionStages": ["AWSCURRENT"],
                "CreatedDate": 1_700_000_000.0,
            })
            .to_string(),
        );
        let counter = calls.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let calls = counter.clone();
                let answer = answer.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: hyper::Request<hyper::body::Incoming>| {
                            let calls = calls.clone();
                            let answer = answer.clone();
                            async move {
                                calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                let target = request
                                    .headers()
                                    .get("x-amz-target")
                                    .and_then(|value| value.to_str().ok())
                                    .unwrap_or_default()
                                    .to_owned();
                                // Drain the body as the real service would before answering.
                                let _ = request.into_body().collect().await;
                                tokio::time::sleep(latency).await;
                                let (status, body) = if target == "secretsmanager.GetSecretValue" {
                                    (200, answer)
                                } else {
                                    (
                                        400,
                                        bytes::Bytes::from(format!(
                                            r#"{{"__type":"InvalidRequestException","message":"the bench backend only serves GetSecretValue, not {target}"}}"#
                                        )),
                                    )
                                };
                                hyper::Response::builder()
                                    .status(status)
                                    .header("content-type", "application/x-amz-json-1.1")
                                    .header("x-amzn-requestid", "bench")
                                    .body(Full::new(body))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { address, calls }
    }

    fn calls(&self) -> u64 {
        self.calls.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Scenario 4: rounds of `concurrency` simultaneous resolves of one definition just
/// invalidated, against a backend that takes `latency` per call.
async fn cold_misses(args: &Args, dir: &Path) -> Measurement {
    let backend = SlowSecretsManager::start(args.backend_latency, args.payload).await;
    let socket = dir.join("cold.sock");
    let port = free_port();
    let config = dir.join("cold.yaml");
    std::fs::write(
        &config,
        format!(
            "server:\n  unix_socket: {}\n  tcp: 127.0.0.1:{port}\ncache:\n  ttl: 1h\nbackends:\n  slow:\n    type: aws_secrets_manager\n    region: us-east-1\n    endpoint_url: http://{}\ndefinitions:\n  cold:\n    backend: slow\n    secret: cold\n",
            socket.display(),
            backend.address
        ),
    )
    .expect("write the cold-miss config");
    let started = Instant::now();
    let child = spawn(
        Command::new(&args.daemon)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env("AWS_ACCESS_KEY_ID", "AKIDBENCHMARK")
            .env("AWS_SECRET_ACCESS_KEY", "bench")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN"),
        args.server_workers,
    );
    let daemon = Server {
        child,
        socket,
        tcp: format!("127.0.0.1:{port}"),
    };
    wait_serving(&daemon.address(Transport::Uds), started).await;
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

fn write_secrets(dir: &Path, entries: usize, payload: usize) -> PathBuf {
    let path = dir.join(format!("secrets-{entries}.yaml"));
    let value = "s".repeat(payload);
    let mut text = String::with_capacity(entries * (payload + 24));
    text.push_str(&format!("bench: \"{value}\"\n"));
    for i in 0..entries {
        text.push_str(&format!("s{i}: \"{value}\"\n"));
    }
    std::fs::write(&path, text).expect("write secrets");
    path
}

fn write_config(
    dir: &Path,
    name: &str,
    secrets: &Path,
    definitions: usize,
    socket: &Path,
    port: u16,
) -> PathBuf {
    let mut text = format!(
        "server:\n  unix_socket: {}\n  tcp: 127.0.0.1:{port}\ncache:\n  ttl: 1h\n  max_entries: 200000\nbackends:\n  local:\n    type: file\n    path: {}\n  env:\n    type: env\ndefinitions:\n  bench:\n    backend: local\n    secret: bench\n  bench-env:\n    backend: env\n    secret: {BENCH_ENV_VARIABLE}\n",
        socket.display(),
        secrets.display()
    );
    for i in 0..definitions {
        text.push_str(&format!("  s{i}:\n    backend: local\n    secret: s{i}\n"));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

/// The variable the `bench-env` definition reads: the same value as `bench`, from the
/// env backend, which (unlike the file backend) makes no system call on a cache hit.
const BENCH_ENV_VARIABLE: &str = "VAULTBRIDGE_BENCH_SECRET";

fn spawn(command: &mut Command, server_workers: Option<usize>) -> Child {
    if let Some(workers) = server_workers {
        command.env("TOKIO_WORKER_THREADS", workers.to_string());
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .env("VAULTBRIDGE_LOG", "warn")
        .spawn()
        .expect("spawn a server")
}

async fn start_daemon(args: &Args, config: &Path, socket: &Path, port: u16) -> (Server, Duration) {
    let started = Instant::now();
    let child = spawn(
        Command::new(&args.daemon)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env(BENCH_ENV_VARIABLE, "s".repeat(args.payload)),
        args.server_workers,
    );
    let server = Server {
        child,
        socket: socket.to_path_buf(),
        tcp: format!("127.0.0.1:{port}"),
    };
    let ready = wait_serving(&server.address(Transport::Uds), started).await;
    (server, ready)
}

async fn run(args: Args) {
    assert!(
        args.daemon.exists(),
        "{} does not exist: build it with `cargo build --release` (scripts/bench does)",
        args.daemon.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let mut results: Vec<Measurement> = Vec::new();
    let work = Arc::new(Work::Resolve("bench".to_owned()));

    // 1. Baseline.
    let socket = dir.path().join("baseline.sock");
    let port = free_port();
    let me = std::env::current_exe().expect("own path");
    let started = Instant::now();
    let baseline = Server {
        child: spawn(
            Command::new(me).args([
                "baseline-server",
                "--socket",
                socket.to_str().expect("utf-8 path"),
                "--tcp",
                &format!("127.0.0.1:{port}"),
                "--payload",
                &args.payload.to_string(),
            ]),
            args.server_workers,
        ),
        socket,
        tcp: format!("127.0.0.1:{port}"),
    };
    wait_serving(&baseline.address(Transport::Uds), started).await;

    // 2. Cache hit, and 3. mixed Zipf batches, on one daemon.
    let secrets = write_secrets(dir.path(), 1000, args.payload);
    let socket = dir.path().join("daemon.sock");
    let port = free_port();
    let config = write_config(dir.path(), "daemon.yaml", &secrets, 1000, &socket, port);
    let (daemon, _) = start_daemon(&args, &config, &socket, port).await;
    let idle_rss = daemon.rss_mb();
    let mut baseline_runs = Vec::new();
    let mut daemon_runs = Vec::new();
    let highest = args.concurrency.iter().copied().max().unwrap_or(1);
    for transport in [Transport::Uds, Transport::Tcp] {
        for &concurrency in &args.concurrency {
            let mut contenders = vec![
                (&baseline, "baseline", work.clone()),
                (&daemon, "cache hit", work.clone()),
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
            daemon_runs.extend(medians);
        }
    }
    drop(baseline);
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
    drop(daemon);

    // 4. Cold misses with coalescing.
    results.push(cold_misses(&args, dir.path()).await);

    // 5. Memory with 100,000 cached definitions of 64-byte values.
    let large_rss = if args.skip_large {
        None
    } else {
        let secrets = write_secrets(dir.path(), 100_000, 64);
        let socket = dir.path().join("large.sock");
        let port = free_port();
        let config = write_config(dir.path(), "large.yaml", &secrets, 100_000, &socket, port);
        let (daemon, _) = start_daemon(&args, &config, &socket, port).await;
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
                })
                .await
                .expect("batch");
        }
        Some((loaded, daemon.rss_mb()))
    };

    // 6. Startup with the example config, median of 5.
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
}

fn report(
    args: &Args,
    results: &[Measurement],
    idle_rss: f64,
    large_rss: Option<(f64, f64)>,
    startup: Duration,
) {
    let baseline_for = |m: &Measurement| {
        results.iter().find(|b| {
            b.scenario == "baseline" && b.transport == m.transport && b.concurrency == m.concurrency
        })
    };
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get);
    println!(
        "duration {:?} per run, {} connections, {}-byte secret, {cores} cores, {} tokio workers per server\n",
        args.duration,
        args.connections,
        args.payload,
        args.server_workers.unwrap_or(cores)
    );
    println!(
        "| scenario | transport | concurrency | req/s | secrets/s | p50 µs | p99 µs | p99.9 µs | server CPU µs/req | CPU µs/secret | req/s vs baseline | CPU vs baseline (runs' range) | RSS MB |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for m in results {
        let (rate_ratio, cpu_ratio) = match (m.paired, baseline_for(m)) {
            (Some(paired), _) => (
                format!("{:.2}", paired.rate),
                format!(
                    "{:.2} ({:.2}-{:.2})",
                    paired.cpu, paired.cpu_lowest, paired.cpu_highest
                ),
            ),
            (None, Some(b)) if m.per_request == 1 => (
                format!("{:.2}", m.rate() / b.rate()),
                format!("{:.2}", m.cpu_us_per_request / b.cpu_us_per_request),
            ),
            (None, _) => ("-".to_owned(), "-".to_owned()),
        };
        println!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} | {} | {} | {:.1} |",
            m.scenario,
            m.transport,
            m.concurrency,
            m.rate(),
            m.rate() * m.per_request as f64,
            m.p50_us,
            m.p99_us,
            m.p999_us,
            m.cpu_us_per_request,
            m.cpu_us_per_request / m.per_request as f64,
            rate_ratio,
            cpu_ratio,
            m.rss_mb
        );
    }
    println!("\n| coalescing, memory and startup | value |\n|---|---:|");
    for m in results {
        if let Some((fewest, most)) = m.backend_calls_per_round {
            println!(
                "| backend calls per round of {} cold resolves (must be 1) | {} |",
                m.concurrency,
                if fewest == most {
                    fewest.to_string()
                } else {
                    format!("{fewest} to {most}")
                }
            );
        }
    }
    println!("| RSS idle (1,000 definitions configured) | {idle_rss:.1} MB |");
    match large_rss {
        Some((loaded, cached)) => {
            println!(
                "| RSS with 100,000 definitions loaded, nothing resolved yet | {loaded:.1} MB |"
            );
            println!("| RSS with 100,000 cached definitions of 64-byte values | {cached:.1} MB |");
        }
        None => println!("| RSS with 100,000 cached definitions | skipped |"),
    }
    println!(
        "| startup to SERVING, example config (median of 5) | {:.1} ms |\n",
        startup.as_secs_f64() * 1e3
    );
    for m in results {
        let line = serde_json::json!({
            "scenario": m.scenario,
            "transport": m.transport,
            "concurrency": m.concurrency,
            "requests_per_second": m.rate(),
            "secrets_per_request": m.per_request,
            "p50_us": m.p50_us,
            "p99_us": m.p99_us,
            "p999_us": m.p999_us,
            "cpu_us_per_request": m.cpu_us_per_request,
            "rss_mb": m.rss_mb,
            "vs_baseline": m.paired.map(|p| serde_json::json!({
                "requests_per_second": p.rate,
                "cpu_per_request": p.cpu,
                "cpu_per_request_range": [p.cpu_lowest, p.cpu_highest],
            })),
            "backend_calls_per_round": m.backend_calls_per_round.map(|(min, max)| [min, max]),
        });
        println!("{line}");
    }
    println!(
        "{}",
        serde_json::json!({
            "scenario": "memory and startup",
            "rss_idle_mb": idle_rss,
            "rss_100k_loaded_mb": large_rss.map(|(loaded, _)| loaded),
            "rss_100k_mb": large_rss.map(|(_, cached)| cached),
            "startup_ms": startup.as_secs_f64() * 1e3,
        })
    );
}
