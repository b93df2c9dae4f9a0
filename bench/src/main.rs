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
    #[arg(long, default_value = "5s", value_parser = humantime_duration)]
    duration: Duration,
    /// HTTP/2 connections the load is spread over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
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
        None => runtime.block_on(run(args)),
    }
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
    latencies.sort_unstable();
    let percentile = |p: f64| {
        let index =
            ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len().max(1)) - 1;
        latencies.get(index).copied().unwrap_or(0) as f64
    };
    let requests = latencies.len() as u64;
    Measurement {
        scenario: scenario.to_owned(),
        transport: transport.name(),
        concurrency,
        per_request: work.per_request(),
        requests,
        seconds,
        p50_us: percentile(0.50),
        p99_us: percentile(0.99),
        p999_us: percentile(0.999),
        cpu_us_per_request: cpu.as_secs_f64() * 1e6 / requests.max(1) as f64,
        rss_mb: server.rss_mb(),
    }
}

/// One run per transport and concurrency level.
async fn matrix(
    server: &Server,
    scenario: &str,
    args: &Args,
    work: &Arc<Work>,
) -> Vec<Measurement> {
    let mut results = Vec::new();
    for transport in [Transport::Uds, Transport::Tcp] {
        for &concurrency in &args.concurrency {
            let run = load(
                server,
                scenario,
                transport,
                concurrency,
                args.connections,
                args.duration,
                work.clone(),
            );
            results.push(run.await);
        }
    }
    results
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
        "server:\n  unix_socket: {}\n  tcp: 127.0.0.1:{port}\ncache:\n  ttl: 1h\n  max_entries: 200000\nbackends:\n  local:\n    type: file\n    path: {}\ndefinitions:\n  bench:\n    backend: local\n    secret: bench\n",
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

fn spawn(command: &mut Command) -> Child {
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
            .arg(config),
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
        child: spawn(Command::new(me).args([
            "baseline-server",
            "--socket",
            socket.to_str().expect("utf-8 path"),
            "--tcp",
            &format!("127.0.0.1:{port}"),
            "--payload",
            &args.payload.to_string(),
        ])),
        socket,
        tcp: format!("127.0.0.1:{port}"),
    };
    wait_serving(&baseline.address(Transport::Uds), started).await;
    results.extend(matrix(&baseline, "baseline", &args, &work).await);
    drop(baseline);

    // 2. Cache hit, and 3. mixed Zipf batches, on one daemon.
    let secrets = write_secrets(dir.path(), 1000, args.payload);
    let socket = dir.path().join("daemon.sock");
    let port = free_port();
    let config = write_config(dir.path(), "daemon.yaml", &secrets, 1000, &socket, port);
    let (daemon, _) = start_daemon(&args, &config, &socket, port).await;
    let idle_rss = daemon.rss_mb();
    results.extend(matrix(&daemon, "cache hit", &args, &work).await);
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

    // 5. Memory with 100,000 cached definitions of 64-byte values.
    let large_rss = if args.skip_large {
        None
    } else {
        let secrets = write_secrets(dir.path(), 100_000, 64);
        let socket = dir.path().join("large.sock");
        let port = free_port();
        let config = write_config(dir.path(), "large.yaml", &secrets, 100_000, &socket, port);
        let (daemon, _) = start_daemon(&args, &config, &socket, port).await;
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
        Some(daemon.rss_mb())
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
    large_rss: Option<f64>,
    startup: Duration,
) {
    let baseline_for = |m: &Measurement| {
        results.iter().find(|b| {
            b.scenario == "baseline" && b.transport == m.transport && b.concurrency == m.concurrency
        })
    };
    println!(
        "duration {:?} per run, {} connections, {}-byte secret, {} cores\n",
        args.duration,
        args.connections,
        args.payload,
        std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get)
    );
    println!(
        "| scenario | transport | concurrency | req/s | secrets/s | p50 µs | p99 µs | p99.9 µs | server CPU µs/req | CPU µs/secret | req/s vs baseline | CPU vs baseline | RSS MB |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for m in results {
        let (rate_ratio, cpu_ratio) = match baseline_for(m) {
            Some(b) if m.per_request == 1 => (
                format!("{:.2}", m.rate() / b.rate()),
                format!("{:.2}", m.cpu_us_per_request / b.cpu_us_per_request),
            ),
            _ => ("-".to_owned(), "-".to_owned()),
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
    println!("\n| memory and startup | value |\n|---|---:|");
    println!("| RSS idle (1,000 definitions configured) | {idle_rss:.1} MB |");
    match large_rss {
        Some(rss) => {
            println!("| RSS with 100,000 cached definitions of 64-byte values | {rss:.1} MB |")
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
        });
        println!("{line}");
    }
    println!(
        "{}",
        serde_json::json!({
            "scenario": "memory and startup",
            "rss_idle_mb": idle_rss,
            "rss_100k_mb": large_rss,
            "startup_ms": startup.as_secs_f64() * 1e3,
        })
    );
}
