//! The baseline runs as this same binary in `baseline-server` mode, a child process
//! like the daemon, so that its CPU time and RSS are read the same way.

use crate::cli::Args;
use crate::server::{Reports, Server, Transport, spawn_reporting_tcp, wait_serving};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;
use vaultbridge::proto::v1::{
    self as pb, ResolveBatchRequest, ResolveRequest,
    secrets_server::{Secrets, SecretsServer},
};

/// The baseline: an empty unary handler returning the same message a cache hit does.
#[derive(Debug, Clone)]
struct Baseline {
    payload: Arc<Vec<u8>>,
    text: Arc<String>,
}

#[tonic::async_trait]
impl Secrets for Baseline {
    type WatchStream = futures_util::stream::Empty<Result<pb::WatchEvent, tonic::Status>>;

    /// Not measured: the baseline only has to answer what the scenarios call.
    async fn watch(
        &self,
        _request: tonic::Request<pb::WatchRequest>,
    ) -> Result<tonic::Response<Self::WatchStream>, tonic::Status> {
        Err(tonic::Status::unimplemented(
            "the baseline server does not watch",
        ))
    }

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
                // A cache hit carries its age; the same size on the wire here.
                age: Some(prost_types::Duration {
                    seconds: 12,
                    nanos: 345_678_901,
                }),
                // Every field spelled out: `pb::Secret` wipes itself on drop, so struct
                // update syntax cannot move the rest out of a default.
                version_id: None,
                stale: false,
                stale_reason: None,
                source: 0,
                trimmed: false,
                metadata: Default::default(),
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

pub(crate) async fn baseline_server(socket: PathBuf, tcp: std::net::SocketAddr, payload: usize) {
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
    // What the parent reads back for `--tcp 127.0.0.1:0`, in the daemon's words. It is
    // written before either server starts, so before the health check answers.
    let bound = tcp.local_addr().expect("the bound TCP address");
    println!("listening on TCP address={bound}");
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

pub(crate) async fn start_baseline(args: &Args, dir: &Path) -> Server {
    let socket = dir.join("baseline.sock");
    let me = std::env::current_exe().expect("own path");
    let started = Instant::now();
    let (child, tcp) = spawn_reporting_tcp(
        Command::new(me).args([
            "baseline-server",
            "--socket",
            socket.to_str().expect("utf-8 path"),
            "--tcp",
            "127.0.0.1:0",
            "--payload",
            &args.payload.to_string(),
        ]),
        args.server_workers,
        Reports::OnStdout,
    );
    let mut baseline = Server {
        child,
        socket,
        tcp: String::new(),
    };
    wait_serving(&baseline.address(Transport::Uds), started).await;
    baseline.tcp = tcp.read("the baseline server").await;
    baseline
}
