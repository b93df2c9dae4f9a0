//! Running the daemon: listeners, health, reflection, graceful shutdown.

use crate::admin::AdminService;
use crate::config::{Config, ProcessVars, ServerLimits};
use crate::jira::service::JiraGrpc;
use crate::listen::{self, ListenError};
use crate::metrics::Metrics;
use crate::proto::v1::{
    admin_server::AdminServer, jira_server::JiraServer, secrets_server::SecretsServer,
};
use crate::proto::{self};
use crate::registry;
use crate::reload::Reloader;
use crate::resolver::{self, Resolver};
use crate::service::SecretsService;
use crate::status::OversizeLayer;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tonic_health::ServingStatus;

/// The name health checks use for the secrets service.
pub(crate) const SECRETS_SERVICE: &str = "vaultbridge.v1.Secrets";

#[derive(Debug, thiserror::Error)]
pub(crate) enum ServeError {
    // Transparent: these add nothing to the wrapped error's text or its source.
    #[error(transparent)]
    Backend(#[from] registry::BuildError),
    #[error(transparent)]
    Resolver(#[from] resolver::SetupError),
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error(transparent)]
    Access(#[from] crate::access::SetupError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Http(#[from] crate::http::SetupError),
    #[error("cannot serve reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// Where the config came from, and whether to follow its changes.
#[derive(Debug, Default)]
pub(crate) struct ConfigSource {
    /// `None`: the embedded default, which cannot change.
    pub path: Option<PathBuf>,
    /// Reload when the file's content changes (`serve --watch-config`).
    pub watch: bool,
}

/// Runs until `shutdown` completes, then stops accepting, lets in-flight calls finish
/// (for up to `server.shutdown_grace`), and removes the socket file. SIGHUP and the
/// `Admin` service's `Reload` reload the config (see [`crate::reload`]).
pub(crate) async fn serve(
    mut config: Config,
    source: ConfigSource,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let (metrics, metrics_registry) = match &config.server.metrics {
        Some(settings) => {
            let (metrics, registry) = Metrics::new(settings.per_definition);
            (Some(metrics), Some(registry))
        }
        None => (None, None),
    };
    let definition_count = config.definitions.len();
    if definition_count == 0 {
        // `vaultbridge check` refuses this config; serving it stays possible (an image
        // whose definitions come later), but every call will be NOT_FOUND.
        tracing::warn!("the config has no definitions: every resolve will be NOT_FOUND");
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let reloader = Reloader::start(
        &mut config,
        source.path.clone(),
        metrics.as_ref(),
        stop_rx.clone(),
    )
    .await?;
    let live = reloader.live().clone();

    let (health, health_service) = tonic_health::server::health_reporter();
    set_health(&health, ServingStatus::NotServing).await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    if config.cache.warm_up {
        warm_up(&live.load().resolver).await;
    }
    // Loading a large config leaves its parse memory resident under glibc; give it back
    // once, before serving, while nothing else allocates.
    let trimmed = Instant::now();
    let released = tokio::task::spawn_blocking(vaultbridge_heap::release_free_pages)
        .await
        .unwrap_or(false);
    tracing::debug!(released, took = ?trimmed.elapsed(), "returned free heap pages to the kernel");
    let limits = config.server.limits;
    let max_request = limits.max_request_size;
    let mut secrets = SecretsService::new(live.clone(), stop_rx.clone());
    let mut jira_grpc = JiraGrpc::new(live.clone(), stop_rx.clone());
    if let Some(metrics) = &metrics {
        secrets = secrets.metered(metrics);
        jira_grpc = jira_grpc.metered(metrics);
    }
    let routes = tonic::service::Routes::new(
        SecretsServer::new(secrets).max_decoding_message_size(max_request),
    )
    .add_service(JiraServer::new(jira_grpc).max_decoding_message_size(max_request))
    .add_service(
        AdminServer::new(AdminService::new(reloader.clone()))
            .max_decoding_message_size(max_request),
    )
    .add_service(health_service.max_decoding_message_size(max_request))
    .add_service(reflection_v1.max_decoding_message_size(max_request))
    .add_service(reflection_v1alpha.max_decoding_message_size(max_request));

    let mut servers = JoinSet::new();
    let mut socket = None;
    let accept = listen::Limits {
        max_connections: limits.max_connections,
        max_connections_per_peer: limits.max_connections_per_peer,
        handshake_timeout: limits.handshake_timeout,
    };

    if let Some(path) = &config.server.unix_socket {
        let (listener, file) = listen::bind_unix(
            path,
            &listen::SocketAccess {
                mode: config.server.unix_socket_mode,
                owner: config.server.unix_socket_owner,
                group: config.server.unix_socket_group,
            },
        )?;
        tracing::info!(socket = %path.display(), "listening on Unix socket");
        let incoming = listen::incoming(listener, accept, "unix");
        socket = Some(file);
        let server = grpc_server(&limits)
            .add_routes(routes.clone())
            .serve_with_incoming_shutdown(incoming, stopped(stop_rx.clone()));
        servers.spawn(server);
    }
    if let Some(addr) = config.server.tcp {
        let bind_error = |source| ListenError::Bind {
            what: format!("TCP {addr}"),
            source,
        };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let bound = listener.local_addr().map_err(bind_error)?;
        let server = grpc_server(&limits).add_routes(routes.clone());
        match &config.server.tls {
            // TLS connections have their own accept loop with the same connection caps
            // and their own handshake deadline (`crate::tls`); the listener's preface
            // check would read TLS records, not HTTP/2.
            Some(tls) => {
                let (acceptor, key) = crate::tls::acceptor(tls)?;
                tokio::spawn(key.watch(stop_rx.clone()));
                tracing::info!(
                    address = %bound,
                    client_certificates = tls.client_ca_file.is_some(),
                    "listening on TCP with TLS"
                );
                let incoming = crate::tls::incoming(listener, acceptor, accept, stop_rx.clone());
                servers
                    .spawn(server.serve_with_incoming_shutdown(incoming, stopped(stop_rx.clone())));
            }
            None => {
                tracing::info!(address = %bound, "listening on TCP");
                let incoming = listen::incoming(listener, accept, "tcp");
                servers
                    .spawn(server.serve_with_incoming_shutdown(incoming, stopped(stop_rx.clone())));
            }
        }
    }

    let mut http_socket = None;
    if let Some(settings) = &config.server.http {
        let face = crate::http::Face::new(
            live.clone(),
            settings,
            metrics.as_ref(),
            stop_rx.clone(),
            &ProcessVars,
        )?;
        let access = listen::SocketAccess {
            mode: config.server.unix_socket_mode,
            owner: config.server.unix_socket_owner,
            group: config.server.unix_socket_group,
        };
        http_socket = crate::http::listen(face, settings, &access, accept, &mut servers).await?;
    }

    if let (Some(settings), Some(mut registry)) = (&config.server.metrics, metrics_registry) {
        registry.register_collector(Box::new(crate::metrics::CacheCollector(live.clone())));
        registry.register_collector(Box::new(crate::metrics::JiraCollector(live.clone())));
        let what = || format!("metrics TCP {}", settings.address);
        let (listener, bound) = crate::metrics::bind(settings.address)
            .await
            .map_err(|source| ListenError::Bind {
                what: what(),
                source,
            })?;
        tracing::info!(address = %bound, "serving Prometheus metrics at /metrics");
        tokio::spawn(crate::metrics::serve(
            listener,
            Arc::new(registry),
            stop_rx.clone(),
        ));
    }

    // Before SERVING: SIGHUP's default action ends the process, and from now on an
    // operator may send it.
    spawn_reload_on_hangup(reloader.clone(), stop_rx.clone());
    if source.watch {
        match source.path.clone() {
            Some(path) => {
                tokio::spawn(crate::reload::watch_config(
                    reloader.clone(),
                    path,
                    stop_rx.clone(),
                ));
            }
            None => tracing::warn!(
                "--watch-config does nothing without --config: the embedded config cannot change"
            ),
        }
    }
    set_health(&health, ServingStatus::Serving).await;
    tracing::info!(
        config = %config.source,
        definitions = definition_count,
        backends = config.backends.len(),
        "vaultbridge is serving"
    );

    tokio::select! {
        () = shutdown => {}
        Some(result) = servers.join_next() => {
            // A server that stops by itself has failed; stop the others too.
            report_server_end(result);
        }
    }

    tracing::info!(grace = ?config.server.shutdown_grace, "shutting down: draining in-flight calls");
    set_health(&health, ServingStatus::NotServing).await;
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(config.server.shutdown_grace, async {
        while let Some(result) = servers.join_next().await {
            report_server_end(result);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("in-flight calls did not finish within the shutdown grace; exiting anyway");
        servers.abort_all();
    }
    if let Some(access) = &live.load().access {
        access.flush().await;
    }
    reloader.stopped().await;
    // While the runtime can still wait for them: a plugin vaultbridge started gets
    // SIGTERM and its grace period here, not a SIGKILL when the runtime is dropped.
    reloader.shut_down_backends().await;
    for socket in [socket, http_socket].into_iter().flatten() {
        socket.remove();
    }
    tracing::info!("stopped");
    Ok(())
}

/// tonic's server with the configured limits. tonic leaves the concurrent-stream limit
/// unset (hyper's own default of 200 never applies), so it is always set here.
fn grpc_server(
    limits: &ServerLimits,
) -> tonic::transport::Server<tower::layer::util::Stack<OversizeLayer, tower::layer::util::Identity>>
{
    tonic::transport::Server::builder()
        .max_concurrent_streams(limits.max_concurrent_streams)
        .timeout(limits.request_timeout)
        .http2_keepalive_interval(Some(limits.idle_timeout))
        .http2_keepalive_timeout(Some(crate::config::KEEPALIVE_TIMEOUT))
        .layer(OversizeLayer)
}

/// The overall status (service "") and the secrets service's move together.
async fn set_health(health: &tonic_health::server::HealthReporter, status: ServingStatus) {
    for service in ["", SECRETS_SERVICE] {
        health.set_service_status(service, status).await;
    }
}

/// Resolves every definition once, batched per backend, so the first callers hit a
/// warm cache. Failures are reported and do not stop the daemon: a later resolve
/// tries again.
async fn warm_up(resolver: &Resolver) {
    let requests: Vec<(String, crate::resolver::Freshness)> = resolver
        .definitions()
        .iter()
        .map(|definition| (definition.name.to_string(), Default::default()))
        .collect();
    let results = resolver.resolve_many(&requests).await;
    let mut failed = 0;
    for result in &results {
        if let Err(err) = result {
            failed += 1;
            tracing::warn!(error = %err, "warm-up could not resolve a definition");
        }
    }
    tracing::info!(resolved = results.len() - failed, failed, "cache warmed up");
}

fn report_server_end(result: Result<Result<(), tonic::transport::Error>, tokio::task::JoinError>) {
    match result {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::error!(error = %err, "a listener failed"),
        Err(err) => tracing::error!(error = %err, "a listener task ended abnormally"),
    }
}

/// Reloads the config on each SIGHUP, until the daemon stops.
fn spawn_reload_on_hangup(reloader: Arc<Reloader>, mut stop: watch::Receiver<bool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(stream) => stream,
        Err(err) => {
            tracing::error!(error = %err, "cannot listen for SIGHUP; reload with `vaultbridge reload`");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            let received = tokio::select! {
                _ = stop.wait_for(|stop| *stop) => None,
                received = hangup.recv() => received,
            };
            if received.is_none() {
                return;
            }
            reloader.reload("SIGHUP").await;
        }
    });
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Resolves when SIGTERM or SIGINT arrives.
pub(crate) async fn termination_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(stream) => stream,
        Err(err) => {
            tracing::error!(error = %err, "cannot listen for SIGTERM; only SIGINT will stop the daemon");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProcessVars;

    fn config(backends: &str) -> Config {
        let text = format!(
            "server:\n  tcp: 127.0.0.1:1\nbackends:\n{backends}definitions:\n  s:\n    backend: kv\n    secret: s\n"
        );
        Config::parse(&text, "test.yaml", std::path::Path::new(""), &ProcessVars).unwrap()
    }

    #[cfg(feature = "azure")]
    #[tokio::test]
    async fn a_backend_that_cannot_be_built_keeps_its_error_as_the_source() {
        use std::error::Error as _;
        use vaultbridge_backend_core::BackendError;
        // No test sets this variable, so building the backend fails.
        let config = config(
            "  kv:\n    type: azure_key_vault\n    vault_url: https://x.vault.azure.net\n    credential: client_secret\n    tenant_id: t\n    client_id: c\n    client_secret_env: VB_UNIT_NEVER_SET_6F1C\n",
        );
        let err = ServeError::from(registry::build_all(&config.backends).await.unwrap_err());
        assert_eq!(
            err.to_string(),
            "backend `kv` (azure_key_vault): the client secret's environment variable `VB_UNIT_NEVER_SET_6F1C` is not set"
        );
        let source = err
            .source()
            .and_then(|source| source.downcast_ref::<BackendError>())
            .unwrap();
        assert_eq!(
            source.kind(),
            vaultbridge_backend_core::ErrorKind::InvalidConfig
        );
    }

    #[test]
    fn a_definition_whose_backend_was_not_built_is_named() {
        let config = config("  kv:\n    type: env\n");
        let err = ServeError::from(
            Resolver::new(&config, &std::collections::BTreeMap::new()).unwrap_err(),
        );
        assert!(matches!(
            &err,
            ServeError::Resolver(resolver::SetupError::BackendNotBuilt { definition, backend })
                if definition == "s" && backend == "kv"
        ));
        assert_eq!(
            err.to_string(),
            "definition `s` names backend `kv`, which was not built"
        );
    }
}
