//! The `vaultbridge.v1.Jira` gRPC service.

use super::config::{Deployment, EmailSource};
use super::connections::StateSnapshot;
use super::credentials::{Credentials, Scheme};
use super::verify::ConnectionStatus;
use crate::access::{Guard, Target};
use crate::metrics::{Metrics, ServiceMeter};
use crate::proto::v1::{self as pb, jira_server::Jira};
use crate::reload::Live;
use std::sync::Arc;
use tonic::{Request, Response, Status};

#[derive(Debug, Clone)]
pub(crate) struct JiraGrpc {
    /// The connections and access rules being served: each call loads them once.
    live: Arc<Live>,
    /// Becomes true when the daemon shuts down, to end watch streams.
    stopping: tokio::sync::watch::Receiver<bool>,
    meter: ServiceMeter,
}

/// The service's methods, as counted in the metrics; indices into its [`ServiceMeter`].
mod rpc {
    pub(super) const SERVICE: &str = "vaultbridge.v1.Jira";
    pub(super) const METHODS: [&str; 5] = [
        "WatchConnections",
        "GetCredentials",
        "ListConnections",
        "VerifyConnection",
        "ReportAuthFailure",
    ];
    pub(super) const WATCH_CONNECTIONS: usize = 0;
    pub(super) const GET_CREDENTIALS: usize = 1;
    pub(super) const LIST_CONNECTIONS: usize = 2;
    pub(super) const VERIFY_CONNECTION: usize = 3;
    pub(super) const REPORT_AUTH_FAILURE: usize = 4;
}

impl JiraGrpc {
    pub(crate) fn new(live: Arc<Live>, stopping: tokio::sync::watch::Receiver<bool>) -> Self {
        Self {
            live,
            stopping,
            meter: ServiceMeter::default(),
        }
    }

    /// Counts calls into `metrics`.
    pub(crate) fn metered(mut self, metrics: &Metrics) -> Self {
        self.meter = metrics.service(rpc::SERVICE, &rpc::METHODS);
        self
    }
}

fn may_use(guard: Option<&Guard>, connection: &str) -> bool {
    guard.is_none_or(|guard| guard.may_use(connection))
}

/// Refuses `connection` when the caller may not use it; records the outcome of what
/// follows otherwise.
async fn guarded<T>(
    guard: Option<&Guard>,
    rpc: &'static str,
    connection: &str,
    call: impl std::future::Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    if let Some(guard) = guard {
        guard.check(rpc, Target::Connection(connection))?;
    }
    let result = call.await;
    if let Some(guard) = guard {
        guard.used(rpc, connection, &result);
    }
    result
}

type EventStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<pb::ConnectionEvent, Status>> + Send>>;

fn deployment(deployment: Deployment) -> pb::JiraDeployment {
    match deployment {
        Deployment::Cloud => pb::JiraDeployment::Cloud,
        Deployment::CloudScoped => pb::JiraDeployment::CloudScoped,
        Deployment::DataCenter => pb::JiraDeployment::DataCenter,
    }
}

pub(crate) fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

fn credentials_to_proto(credentials: &Credentials) -> pb::GetCredentialsResponse {
    pb::GetCredentialsResponse {
        connection: credentials.connection.clone(),
        deployment: deployment(credentials.deployment) as i32,
        base_url: credentials.base_url.clone(),
        site_url: credentials.site_url.clone(),
        scheme: match credentials.scheme {
            Scheme::Basic => pb::AuthScheme::Basic,
            Scheme::Bearer => pb::AuthScheme::Bearer,
        } as i32,
        username: credentials.username.clone(),
        token: credentials
            .token
            .expose_str()
            .unwrap_or_default()
            .to_owned(),
        authorization: credentials
            .authorization
            .expose_str()
            .unwrap_or_default()
            .to_owned(),
        project: credentials.project.clone().unwrap_or_default(),
        expires_at: credentials.expires_at.map(|date| date.to_string()),
        days_left: credentials.days_left,
        warnings: credentials.warnings.clone(),
    }
}

pub(crate) fn state_to_proto(state: &StateSnapshot) -> pb::ConnectionState {
    pb::ConnectionState {
        status: match state.status {
            ConnectionStatus::Unknown => pb::ConnectionStatus::Unknown,
            ConnectionStatus::Connected => pb::ConnectionStatus::Connected,
            ConnectionStatus::NeedsReauthorization => pb::ConnectionStatus::NeedsReauthorization,
            ConnectionStatus::Failed => pb::ConnectionStatus::Failed,
            ConnectionStatus::Unreachable => pb::ConnectionStatus::Unreachable,
        } as i32,
        message: state.message.clone(),
        last_verified_unix: state.last_verified_unix,
        display_name: state.display_name.clone(),
        account_id: state.account_id.clone(),
        project_keys: state.project_keys.clone(),
        consecutive_failures: state.consecutive_failures,
    }
}

/// The calls themselves; the trait's methods count them (see [`crate::metrics`]).
impl JiraGrpc {
    async fn watch_connections_call(
        &self,
        request: Request<pb::WatchConnectionsRequest>,
    ) -> Result<Response<EventStream>, Status> {
        use futures_util::StreamExt;
        let runtime = self.live.load();
        let guard = Guard::of(runtime.access.as_ref(), &request, "WatchConnections")?;
        // Subscribe before the snapshot, so no change falls between the two.
        let changes = tokio_stream::wrappers::BroadcastStream::new(runtime.jira.subscribe());
        let snapshot: Vec<Result<pb::ConnectionEvent, Status>> = runtime
            .jira
            .connections()
            .keys()
            .filter(|name| may_use(guard.as_ref(), name))
            .map(|name| {
                Ok(pb::ConnectionEvent {
                    connection: name.clone(),
                    state: Some(state_to_proto(&runtime.jira.state(name))),
                })
            })
            .collect();
        let changes = changes.filter_map(move |change| {
            // A watcher too slow to keep up misses intermediate states, not the
            // latest: later changes still arrive.
            let event = change
                .ok()
                .filter(|(connection, _)| may_use(guard.as_ref(), connection))
                .map(|(connection, state)| {
                    Ok(pb::ConnectionEvent {
                        connection,
                        state: Some(state_to_proto(&state)),
                    })
                });
            std::future::ready(event)
        });
        let mut stopping = self.stopping.clone();
        let stopped = async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        };
        let stream = futures_util::stream::iter(snapshot)
            .chain(changes)
            .take_until(Box::pin(stopped));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_credentials_call(
        &self,
        request: Request<pb::GetCredentialsRequest>,
    ) -> Result<Response<pb::GetCredentialsResponse>, Status> {
        let runtime = self.live.load();
        let guard = Guard::of(runtime.access.as_ref(), &request, "GetCredentials")?;
        let name = &request.get_ref().connection;
        let credentials = guarded(guard.as_ref(), "GetCredentials", name, async {
            Ok(runtime.jira.credentials(name, today()).await?)
        })
        .await?;
        Ok(Response::new(credentials_to_proto(&credentials)))
    }

    async fn list_connections_call(
        &self,
        request: Request<pb::ListConnectionsRequest>,
    ) -> Result<Response<pb::ListConnectionsResponse>, Status> {
        let runtime = self.live.load();
        let guard = Guard::of(runtime.access.as_ref(), &request, "ListConnections")?;
        let connections = runtime
            .jira
            .connections()
            .iter()
            .filter(|(name, _)| may_use(guard.as_ref(), name))
            .map(|(name, connection)| pb::JiraConnection {
                name: name.clone(),
                deployment: deployment(connection.deployment) as i32,
                site_url: connection.site_url.clone(),
                project: connection.project.clone().unwrap_or_default(),
                expires_at: connection.expires_at.map(|date| date.to_string()),
                token_definition: connection.token_definition.clone(),
                email_definition: match &connection.email {
                    Some(EmailSource::Definition(definition)) => definition.clone(),
                    _ => String::new(),
                },
                state: Some(state_to_proto(&runtime.jira.state(name))),
            })
            .collect();
        Ok(Response::new(pb::ListConnectionsResponse { connections }))
    }

    async fn verify_connection_call(
        &self,
        request: Request<pb::VerifyConnectionRequest>,
    ) -> Result<Response<pb::VerifyConnectionResponse>, Status> {
        let runtime = self.live.load();
        let guard = Guard::of(runtime.access.as_ref(), &request, "VerifyConnection")?;
        let name = request.into_inner().connection;
        let state = guarded(guard.as_ref(), "VerifyConnection", &name, async {
            Ok(runtime.jira.verify_connection(&name, today()).await?)
        })
        .await?;
        Ok(Response::new(pb::VerifyConnectionResponse {
            connection: name,
            state: Some(state_to_proto(&state)),
        }))
    }

    async fn report_auth_failure_call(
        &self,
        request: Request<pb::ReportAuthFailureRequest>,
    ) -> Result<Response<pb::ReportAuthFailureResponse>, Status> {
        let runtime = self.live.load();
        let guard = Guard::of(runtime.access.as_ref(), &request, "ReportAuthFailure")?;
        let name = request.into_inner().connection;
        let outcome = guarded(guard.as_ref(), "ReportAuthFailure", &name, async {
            Ok(runtime.jira.report_auth_failure(&name, today()).await?)
        })
        .await?;
        Ok(Response::new(pb::ReportAuthFailureResponse {
            connection: name,
            token_changed: outcome.token_changed,
            state: Some(state_to_proto(&outcome.state)),
            credentials: outcome.credentials.as_ref().map(credentials_to_proto),
        }))
    }
}

#[tonic::async_trait]
impl Jira for JiraGrpc {
    type WatchConnectionsStream = EventStream;

    async fn watch_connections(
        &self,
        request: Request<pb::WatchConnectionsRequest>,
    ) -> Result<Response<Self::WatchConnectionsStream>, Status> {
        self.meter
            .observe(rpc::WATCH_CONNECTIONS, self.watch_connections_call(request))
            .await
    }

    async fn get_credentials(
        &self,
        request: Request<pb::GetCredentialsRequest>,
    ) -> Result<Response<pb::GetCredentialsResponse>, Status> {
        self.meter
            .observe(rpc::GET_CREDENTIALS, self.get_credentials_call(request))
            .await
    }

    async fn list_connections(
        &self,
        request: Request<pb::ListConnectionsRequest>,
    ) -> Result<Response<pb::ListConnectionsResponse>, Status> {
        self.meter
            .observe(rpc::LIST_CONNECTIONS, self.list_connections_call(request))
            .await
    }

    async fn verify_connection(
        &self,
        request: Request<pb::VerifyConnectionRequest>,
    ) -> Result<Response<pb::VerifyConnectionResponse>, Status> {
        self.meter
            .observe(rpc::VERIFY_CONNECTION, self.verify_connection_call(request))
            .await
    }

    async fn report_auth_failure(
        &self,
        request: Request<pb::ReportAuthFailureRequest>,
    ) -> Result<Response<pb::ReportAuthFailureResponse>, Status> {
        self.meter
            .observe(
                rpc::REPORT_AUTH_FAILURE,
                self.report_auth_failure_call(request),
            )
            .await
    }
}
