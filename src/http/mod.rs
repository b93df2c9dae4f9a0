//! The HTTP/1.1 face (`server.http`): secrets for `curl` and small scripts, and the AWS
//! Secrets Manager Agent's routes for code written against the agent.
//!
//! It is a second door to the same house: requests go through the daemon's resolver
//! (one cache, one single-flight), its access rules and audit trail (the caller's
//! identity from the Unix socket's peer credentials or a bearer token over TCP), and
//! its metrics. Only the protocol differs: [`routes`] parses a request into a call,
//! errors become HTTP statuses through `crate::status`, the one table of codes.
//!
//! hyper's HTTP/1.1 server carries it, keep-alive on, with the header-size and
//! header-read-time limits of the config; the listeners reuse `crate::listen` (the
//! socket's directory checks and lock, and the connection caps, overall and per peer).

mod aws;
mod body;
mod query;
mod routes;

pub(crate) use aws::SetupError;

use crate::config::{HttpConfig, Vars};
use crate::listen::{self, ListenError, UnixSocket};
use crate::metrics::{Metrics, ServiceMeter};
use crate::reload::Live;
use futures_util::StreamExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tonic::transport::server::{Connected, TcpConnectInfo, UdsConnectInfo};

/// Errors of the HTTP layer itself, before a request reaches the resolver. Their codes
/// and HTTP statuses are in `crate::status`.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum HttpRequestError {
    #[error(
        "no route `{path}`: this listener serves `GET /v1/secrets/{{name}}` and `GET /v1/health`"
    )]
    NoRoute { path: String },
    #[error("only GET is served, not {method}")]
    MethodNotAllowed { method: String },
    #[error("a request carries no body: put the name in the path and the options in the query")]
    Body,
    #[error("unknown query parameter `{name}`; this route takes {takes}")]
    UnknownParameter { name: String, takes: &'static str },
    #[error("query parameter `{name}` is given twice")]
    DuplicateParameter { name: String },
    #[error("query parameter `{name}`: expected {expected}, got `{got}`")]
    BadParameter {
        name: &'static str,
        expected: &'static str,
        got: String,
    },
    #[error("the {what} is not valid percent-encoded UTF-8")]
    BadEncoding { what: &'static str },
    #[error("missing parameter secretId")]
    MissingSecretId,
    #[error(
        "requests with an X-Forwarded-For header are refused, as the AWS Secrets Manager Agent refuses them: the listener serves local callers, not a proxy's"
    )]
    Forwarded,
    #[error(
        "missing or wrong X-Aws-Parameters-Secrets-Token header (the daemon reads the token from AWS_TOKEN, AWS_SESSION_TOKEN or AWS_CONTAINER_AUTHORIZATION_TOKEN, as the AWS agent does)"
    )]
    AgentToken,
    #[error(
        "no definition of an `aws_secrets_manager` backend serves the whole secret `{secret_id}`{version}; add one whose `secret` is its name or ARN (without `key`), or ask for a definition by name"
    )]
    NoAwsDefinition { secret_id: String, version: String },
}

/// What the HTTP handlers share, one per daemon.
#[derive(Debug)]
pub(crate) struct Face {
    /// The definitions, backends and rules being served; swapped by a reload.
    live: Arc<Live>,
    meter: ServiceMeter,
    stopping: watch::Receiver<bool>,
    /// The agent's routes, when `aws_agent_compat` is on.
    aws: Option<aws::Compat>,
    /// Each backend's name as a header value, made once; see [`Face::backend_header`].
    backend_headers: Box<[(Arc<str>, hyper::header::HeaderValue)]>,
}

/// The methods as the metrics count them; indices into [`Face::meter`].
mod rpc {
    pub(super) const SERVICE: &str = "vaultbridge.http";
    pub(super) const METHODS: [&str; 3] = ["GetSecret", "Health", "AwsGetSecret"];
    pub(super) const GET_SECRET: usize = 0;
    pub(super) const HEALTH: usize = 1;
    pub(super) const AWS_GET_SECRET: usize = 2;
    /// The names the audit trail records.
    pub(super) const AUDIT_GET_SECRET: &str = "http.GetSecret";
    pub(super) const AUDIT_AWS_GET_SECRET: &str = "http.AwsGetSecret";
}

impl Face {
    pub(crate) fn new(
        live: Arc<Live>,
        config: &HttpConfig,
        metrics: Option<&Metrics>,
        stopping: watch::Receiver<bool>,
        vars: &dyn Vars,
    ) -> Result<Self, SetupError> {
        let resolver = live.load().resolver.clone();
        let aws = if config.aws_agent_compat {
            Some(aws::Compat::new(&resolver, vars)?)
        } else {
            None
        };
        let definitions = resolver.definitions();
        let backend_headers = definitions
            .iter()
            .flat_map(|definition| definition.sources.iter())
            .map(|source| &source.backend_name)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter_map(|name| {
                let value = hyper::header::HeaderValue::from_str(name).ok()?;
                Some((Arc::clone(name), value))
            })
            .collect();
        Ok(Self {
            backend_headers,
            meter: metrics
                .map(|metrics| metrics.service(rpc::SERVICE, &rpc::METHODS))
                .unwrap_or_default(),
            live,
            stopping,
            aws,
        })
    }

    /// `name` as a header value, if the face made one. Every definition of a backend
    /// shares its name's `Arc`, so a pointer comparison finds it: cheaper than hashing
    /// the name on each answer. A name from a reload's new config compares by text.
    fn backend_header(&self, name: &Arc<str>) -> Option<&hyper::header::HeaderValue> {
        let known = || self.backend_headers.iter();
        known()
            .find(|(known, _)| Arc::ptr_eq(known, name))
            .or_else(|| known().find(|(known, _)| known == name))
            .map(|(_, value)| value)
    }
}

/// What a connection tells about its peer, read once when it is accepted.
#[derive(Debug, Clone, Copy)]
struct ConnPeer {
    /// `Some` on the Unix socket: the kernel's uid, gid and pid, when it gave them.
    unix: Option<Option<(u32, u32, Option<i32>)>>,
    address: Option<SocketAddr>,
}

trait PeerInfo {
    fn peer(&self) -> ConnPeer;
}

impl PeerInfo for UdsConnectInfo {
    fn peer(&self) -> ConnPeer {
        ConnPeer {
            unix: Some(
                self.peer_cred
                    .map(|cred| (cred.uid(), cred.gid(), cred.pid())),
            ),
            address: None,
        }
    }
}

impl PeerInfo for TcpConnectInfo {
    fn peer(&self) -> ConnPeer {
        ConnPeer {
            unix: None,
            address: self.remote_addr(),
        }
    }
}

/// Binds the configured listeners and spawns their servers into `servers`; each
/// server ends once `stop` turns true and its connections have finished. The socket
/// gets the gRPC socket's mode, owner and group. Returns the Unix socket to remove at
/// shutdown.
pub(crate) async fn listen<E: Send + 'static>(
    face: Face,
    config: &HttpConfig,
    socket: &listen::SocketAccess,
    limits: listen::Limits,
    servers: &mut JoinSet<Result<(), E>>,
) -> Result<Option<UnixSocket>, ListenError> {
    let face = Arc::new(face);
    let limits = listen::Limits {
        // The connection's first request must start within the header timeout; the
        // slot check counts its bytes like an HTTP/2 preface.
        handshake_timeout: config.header_read_timeout,
        ..limits
    };
    let access = socket;
    let mut socket = None;
    if let Some(path) = &config.unix_socket {
        let (listener, file) = listen::bind_unix(path, access)?;
        tracing::info!(socket = %path.display(), "serving HTTP/1.1 on Unix socket");
        socket = Some(file);
        let incoming = listen::incoming(listener, limits, "http-unix");
        let server = serve(incoming, face.clone(), config.clone());
        servers.spawn(async move {
            server.await;
            Ok(())
        });
    }
    if let Some(addr) = config.tcp {
        let bind_error = |source| ListenError::Bind {
            what: format!("HTTP TCP {addr}"),
            source,
        };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let bound = listener.local_addr().map_err(bind_error)?;
        tracing::info!(address = %bound, aws_agent_compat = face.aws.is_some(), "serving HTTP/1.1 on TCP");
        let incoming = listen::incoming(listener, limits, "http-tcp");
        let server = serve(incoming, face.clone(), config.clone());
        servers.spawn(async move {
            server.await;
            Ok(())
        });
    }
    Ok(socket)
}

/// Serves the connections of `incoming` until the daemon stops, then lets them
/// finish their current request.
async fn serve<S>(
    incoming: impl futures_util::Stream<Item = std::io::Result<S>> + Send + 'static,
    face: Arc<Face>,
    config: HttpConfig,
) where
    S: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
    S::ConnectInfo: PeerInfo,
{
    let mut stop = std::pin::pin!(stopped(face.stopping.clone()));
    let mut connections = JoinSet::new();
    let mut incoming = std::pin::pin!(incoming);
    loop {
        tokio::select! {
            () = &mut stop => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            next = incoming.next() => match next {
                Some(Ok(stream)) => {
                    connections.spawn(connection(stream, face.clone(), config.clone()));
                }
                Some(Err(err)) => tracing::debug!(error = %err, "HTTP: accept failed"),
                None => break,
            },
        }
    }
    while connections.join_next().await.is_some() {}
}

async fn connection<S>(stream: S, face: Arc<Face>, config: HttpConfig)
where
    S: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
    S::ConnectInfo: PeerInfo,
{
    let peer = stream.connect_info().peer();
    let stop = face.stopping.clone();
    let service_face = face.clone();
    let caller = routes::Caller::new(peer, &face.live);
    let service =
        hyper::service::service_fn(move |request| routes::answer(&service_face, &caller, request));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(config.max_header_size);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    // Polled once to register for the stop, then only once the stop may have come (an
    // atomic read): `select!` would poll it at every wake-up, a few hundred
    // instructions per request.
    let mut stopped = std::pin::pin!(stopped(stop.clone()));
    let mut watching = Some(stop);
    let mut registered = false;
    let result = std::future::poll_fn(|cx| {
        if let Some(stop) = &watching
            && (!registered || stop.has_changed().unwrap_or(true))
        {
            registered = true;
            if stopped.as_mut().poll(cx).is_ready() {
                watching = None;
                connection.as_mut().graceful_shutdown();
            }
        }
        connection.as_mut().poll(cx)
    })
    .await;
    if let Err(err) = result {
        tracing::debug!(error = %err, "HTTP connection ended with an error");
    }
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Every parser of a request's path and query, for the fuzz target.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_query(text: &str) {
    let _ = query::decode(text, false, "path");
    let _ = query::freshness(Some(text));
    let _ = query::agent(None, Some(text));
    let _ = query::agent(Some(text.to_owned()), Some(text));
}
