//! What a plugin backend costs (issue 14): a cache hit through a plugin against the same
//! hit through the file backend, and a miss (`refresh: true`, so every call reads the
//! backend) through each. Both backends sit in one daemon, so each pair differs only in
//! the backend; the plugin row of a miss adds one local gRPC round trip.
//!
//! The plugin is this binary in `plugin-server` mode: it answers a fixed value for any
//! secret and does nothing else, so its figures are the round trip's, not a vault's.
//! (The `pass` example plugin would measure gpg.) It runs as a process of its own,
//! started here, so that its CPU time is read from /proc like the daemon's.

use crate::cli::Args;
use crate::load::{Work, interleaved_with_plugin};
use crate::server::{Server, Transport, spawn, wait_serving};
use crate::stats::{Measurement, Spread};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;
use tonic::transport::Channel;
use vaultbridge::client::{self, Address};
use vaultbridge::proto::v1::{self as pb, ResolveRequest, secrets_client::SecretsClient};
use vaultbridge_backend_plugin::proto::v1::{
    self as plugin, backend_server::Backend, backend_server::BackendServer,
};

/// Definitions per backend that the concurrent miss rows cycle through, so that
/// concurrent refreshes seldom meet on one definition (they would share a call).
const MISS_NAMES: usize = 1000;

/// The trivial plugin: the same value, `"s"` times the payload like the bench's
/// secrets file, for any secret.
#[derive(Debug, Clone)]
struct FixedPlugin {
    value: Arc<Vec<u8>>,
}

impl FixedPlugin {
    fn answer(&self) -> plugin::FetchResponse {
        plugin::FetchResponse {
            value: self.value.to_vec(),
            version_id: None,
            metadata: Default::default(),
        }
    }
}

#[tonic::async_trait]
impl Backend for FixedPlugin {
    async fn describe(
        &self,
        _request: tonic::Request<plugin::DescribeRequest>,
    ) -> Result<tonic::Response<plugin::DescribeResponse>, tonic::Status> {
        Ok(tonic::Response::new(plugin::DescribeResponse {
            capabilities: Some(plugin::Capabilities {
                binary: true,
                max_batch: 20,
                ..Default::default()
            }),
            name: "bench".into(),
        }))
    }

    async fn configure(
        &self,
        _request: tonic::Request<plugin::ConfigureRequest>,
    ) -> Result<tonic::Response<plugin::ConfigureResponse>, tonic::Status> {
        Ok(tonic::Response::new(plugin::ConfigureResponse {}))
    }

    async fn fetch(
        &self,
        _request: tonic::Request<plugin::FetchRequest>,
    ) -> Result<tonic::Response<plugin::FetchResponse>, tonic::Status> {
        Ok(tonic::Response::new(self.answer()))
    }

    async fn fetch_many(
        &self,
        request: tonic::Request<plugin::FetchManyRequest>,
    ) -> Result<tonic::Response<plugin::FetchManyResponse>, tonic::Status> {
        let results = request
            .get_ref()
            .secrets
            .iter()
            .map(|_| plugin::FetchResult {
                result: Some(plugin::fetch_result::Result::Secret(self.answer())),
            })
            .collect();
        Ok(tonic::Response::new(plugin::FetchManyResponse { results }))
    }

    /// Never called: the plugin does not declare revisions.
    async fn revision(
        &self,
        _request: tonic::Request<plugin::RevisionRequest>,
    ) -> Result<tonic::Response<plugin::RevisionResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented(
            "the bench plugin has no revisions",
        ))
    }
}

/// `plugin-server` mode: serves the plugin and the health service on `socket`.
pub(crate) async fn plugin_server(socket: PathBuf, payload: usize) {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let _ = std::fs::remove_file(&socket);
    let listener = tokio::net::UnixListener::bind(&socket).expect("bind the plugin socket");
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(BackendServer::new(FixedPlugin {
            value: Arc::new("s".repeat(payload).into_bytes()),
        }))
        .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener))
        .await
        .expect("the bench plugin serves");
}

async fn start_plugin(args: &Args, dir: &Path) -> Server {
    let socket = dir.join("plugin.sock");
    let me = std::env::current_exe().expect("own path");
    let started = Instant::now();
    let child = spawn(
        Command::new(me).args([
            "plugin-server",
            "--socket",
            socket.to_str().expect("utf-8 path"),
            "--payload",
            &args.payload.to_string(),
        ]),
        args.server_workers,
    );
    let plugin = Server {
        child,
        socket,
        tcp: String::new(),
    };
    wait_serving(&plugin.address(Transport::Uds), started).await;
    plugin
}

/// A daemon config with both backends: `bench` and `s0..` on the file, `bench-plugin`
/// and `p0..` (the same secret ids) on the plugin.
fn write_config(dir: &Path, secrets: &Path, plugin_socket: &Path, socket: &Path) -> PathBuf {
    let mut text = format!(
        "server:\n  unix_socket: {}\ncache:\n  ttl: 1h\nbackends:\n  local:\n    type: file\n    path: {}\n  plug:\n    type: plugin\n    socket: {}\ndefinitions:\n  bench:\n    backend: local\n    secret: bench\n  bench-plugin:\n    backend: plug\n    secret: bench\n",
        socket.display(),
        secrets.display(),
        plugin_socket.display()
    );
    for i in 0..MISS_NAMES {
        text.push_str(&format!(
            "  s{i}:\n    backend: local\n    secret: s{i}\n  p{i}:\n    backend: plug\n    secret: s{i}\n"
        ));
    }
    let path = dir.join("plugin.yaml");
    std::fs::write(&path, text).expect("write the plugin config");
    path
}

/// Starts the daemon (its socket only) and checks what the rows rely on: the plugin
/// serves the file's value, a plain resolve of it is a cache hit, a refresh a miss.
async fn start_daemon(args: &Args, config: &Path, socket: &Path) -> Server {
    let started = Instant::now();
    let daemon = Server {
        child: spawn(
            Command::new(&args.daemon)
                .arg("serve")
                .arg("--config")
                .arg(config),
            args.server_workers,
        ),
        socket: socket.to_path_buf(),
        tcp: String::new(),
    };
    wait_serving(&daemon.address(Transport::Uds), started).await;
    let channel = client::channel(&Address::Unix(socket.to_path_buf()))
        .await
        .expect("connect");
    let mut secrets = SecretsClient::new(channel);
    let file = resolve(&mut secrets, "bench", false).await;
    let first = resolve(&mut secrets, "bench-plugin", false).await;
    assert_eq!(
        first.value, file.value,
        "the plugin serves the file's value"
    );
    assert_eq!(first.backend, "plug");
    let hit = resolve(&mut secrets, "bench-plugin", false).await;
    assert_eq!(hit.cache, pb::CacheOutcome::Hit as i32, "a hit");
    let miss = resolve(&mut secrets, "bench-plugin", true).await;
    assert_eq!(miss.cache, pb::CacheOutcome::Miss as i32, "a refresh reads");
    daemon
}

async fn resolve(secrets: &mut SecretsClient<Channel>, name: &str, refresh: bool) -> pb::Secret {
    let answer = secrets
        .resolve(ResolveRequest {
            name: name.to_owned(),
            refresh,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|status| panic!("resolve `{name}`: {status}"));
    answer.into_inner().secret.expect("a secret")
}

/// The plugin rows, each paired run by run with the same through the file backend:
/// cache hits at each concurrency, misses at 1 and at the highest.
pub(crate) async fn measure(args: &Args, dir: &Path, secrets: &Path) -> Vec<Measurement> {
    let plugin = start_plugin(args, dir).await;
    let socket = dir.join("plugin-daemon.sock");
    let config = write_config(dir, secrets, &plugin.socket, &socket);
    let daemon = start_daemon(args, &config, &socket).await;
    let mut results = Vec::new();
    for &concurrency in &args.concurrency {
        let hits = [
            (
                &daemon,
                "plugin rows: cache hit, file backend",
                Arc::new(Work::Resolve("bench".to_owned())),
            ),
            (
                &daemon,
                "cache hit, plugin backend (vs file)",
                Arc::new(Work::Resolve("bench-plugin".to_owned())),
            ),
        ];
        let rows = interleaved_with_plugin(&hits, Transport::Uds, concurrency, args, Some(&plugin));
        results.extend(rows.await);
    }
    let names = |prefix: &str| -> Arc<Vec<String>> {
        Arc::new((0..MISS_NAMES).map(|i| format!("{prefix}{i}")).collect())
    };
    let misses = [
        (
            &daemon,
            "plugin rows: miss (refresh), file backend",
            Arc::new(Work::Refresh(names("s"))),
        ),
        (
            &daemon,
            "miss (refresh), plugin backend (vs file)",
            Arc::new(Work::Refresh(names("p"))),
        ),
    ];
    let highest = args.concurrency.iter().copied().max().unwrap_or(1);
    let mut levels = vec![1, highest];
    levels.dedup();
    for concurrency in levels {
        let rows =
            interleaved_with_plugin(&misses, Transport::Uds, concurrency, args, Some(&plugin));
        results.extend(rows.await);
    }
    results
}

/// The plugin rows' own table: both processes' CPU, and what the plugin adds in µs.
pub(crate) fn table(results: &[Measurement]) {
    let rows: Vec<&Measurement> = results
        .iter()
        .filter(|m| m.plugin_cpu_us_per_request.is_some())
        .collect();
    if rows.is_empty() {
        return;
    }
    println!(
        "| plugin backend, paired with the file backend in the same daemon | transport | concurrency | req/s | p50 µs | p99 µs | daemon CPU µs/req | plugin CPU µs/req | daemon CPU vs file (runs' range) | p50 added µs (runs' range) | daemon CPU added µs (runs' range) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let spread = |s: Spread| format!("{:.1} ({:.1} to {:.1})", s.median, s.lowest, s.highest);
    for m in rows {
        let (ratio, p50_added, cpu_added) = match m.paired {
            Some(p) => (
                format!("{:.2} ({:.2}-{:.2})", p.cpu, p.cpu_lowest, p.cpu_highest),
                spread(p.p50_added_us),
                spread(p.cpu_added_us),
            ),
            None => (
                "1.00 (reference)".to_owned(),
                "-".to_owned(),
                "-".to_owned(),
            ),
        };
        println!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} | {ratio} | {p50_added} | {cpu_added} |",
            m.scenario,
            m.transport,
            m.concurrency,
            m.rate(),
            m.p50_us,
            m.p99_us,
            m.cpu_us_per_request,
            m.plugin_cpu_us_per_request.unwrap_or(0.0),
        );
    }
    println!();
}
