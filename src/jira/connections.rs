//! The daemon's Jira connections: credentials built on demand, and each connection's
//! status since the daemon started.
//!
//! The token (and email) come through the secret resolver, so they are cached, trimmed
//! and redacted like any secret; problems are reported by connection name, never by
//! value.

use super::config::{ConnectionConfig, Deployment, EmailSource, looks_like_email};
use super::credentials::{Credentials, Scheme, token_warnings};
use super::error::{CloudIdError, JiraError};
use super::network::{self, Network};
use super::verify::{ConnectionStatus, Outcome, verify};
use crate::resolver::Resolver;
use base64::Engine;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use vaultbridge_backend_core::SecretValue;
use zeroize::Zeroizing;

/// Where scoped API tokens must be sent instead of the site URL.
pub(crate) const GATEWAY: &str = "https://api.atlassian.com/ex/jira";

pub(crate) struct JiraService {
    connections: BTreeMap<String, ConnectionConfig>,
    resolver: Arc<Resolver>,
    /// One client per distinct network settings (most configs have one), built on
    /// first use: building one loads the platform's CA roots, which took more of the
    /// daemon's start-up than anything else (about 6 ms of 10), for a client many
    /// daemons never use.
    clients: Mutex<HashMap<Network, reqwest::Client>>,
    expiry_warning_days: i64,
    failure_threshold: u32,
    /// Site URL -> cloudId; a site's cloud id does not change.
    cloud_ids: Mutex<HashMap<String, String>>,
    states: Mutex<HashMap<String, TrackedState>>,
    changes: tokio::sync::broadcast::Sender<(String, StateSnapshot)>,
}

/// What the daemon knows about a connection since it started: statuses are
/// re-verified after a restart, never persisted as truth.
#[derive(Debug, Default)]
struct TrackedState {
    outcome: Option<Outcome>,
    last_verified: Option<std::time::SystemTime>,
    consecutive_failures: u32,
    /// The token last handed out, to tell a rotated token from the refused one.
    last_token: Option<SecretValue>,
}

/// A connection's status as reported to callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StateSnapshot {
    pub status: ConnectionStatus,
    pub message: String,
    pub last_verified_unix: Option<i64>,
    pub display_name: String,
    pub account_id: String,
    pub project_keys: Vec<String>,
    pub consecutive_failures: u32,
}

/// The answer to a reported authentication failure.
#[derive(Debug)]
pub(crate) struct AuthFailureOutcome {
    pub token_changed: bool,
    pub state: StateSnapshot,
    pub credentials: Option<Credentials>,
}

impl std::fmt::Debug for JiraService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JiraService")
            .field("connections", &self.connections.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl JiraService {
    pub(crate) fn new(
        connections: BTreeMap<String, ConnectionConfig>,
        expiry_warning: Duration,
        failure_threshold: u32,
        resolver: Arc<Resolver>,
    ) -> Self {
        Self {
            connections,
            resolver,
            clients: Mutex::new(HashMap::new()),
            expiry_warning_days: i64::try_from(expiry_warning.as_secs() / 86_400)
                .unwrap_or(i64::MAX),
            failure_threshold: failure_threshold.max(1),
            cloud_ids: Mutex::new(HashMap::new()),
            states: Mutex::new(HashMap::new()),
            changes: tokio::sync::broadcast::channel(256).0,
        }
    }

    /// The service of a reloaded config. Connections whose settings did not change
    /// keep their status (it moves over from this service, which only calls in flight
    /// still use), and watchers of connection changes keep their subscription.
    pub(crate) fn succeed(
        &self,
        connections: BTreeMap<String, ConnectionConfig>,
        expiry_warning: Duration,
        failure_threshold: u32,
        resolver: Arc<Resolver>,
    ) -> Self {
        let next = Self {
            changes: self.changes.clone(),
            ..Self::new(connections, expiry_warning, failure_threshold, resolver)
        };
        let mut previous = self.states();
        let carried: HashMap<String, TrackedState> = next
            .connections
            .iter()
            .filter(|(name, connection)| self.connections.get(*name) == Some(connection))
            .filter_map(|(name, _)| previous.remove(name).map(|state| (name.clone(), state)))
            .collect();
        drop(previous);
        *next.states() = carried;
        next
    }

    /// The HTTP client for a connection's network settings. reqwest reads the proxy
    /// variables when a client is built, so they are those of the daemon's start.
    fn http(&self, name: &str, network: &Network) -> Result<reqwest::Client, JiraError> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = clients.get(network) {
            return Ok(client.clone());
        }
        let client = network::client(network).map_err(|source| JiraError::HttpClient {
            connection: name.to_owned(),
            source,
        })?;
        clients.insert(network.clone(), client.clone());
        Ok(client)
    }

    /// Status changes as they happen (connection, new state).
    pub(crate) fn subscribe(&self) -> tokio::sync::broadcast::Receiver<(String, StateSnapshot)> {
        self.changes.subscribe()
    }

    fn states(&self) -> std::sync::MutexGuard<'_, HashMap<String, TrackedState>> {
        self.states.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn state(&self, name: &str) -> StateSnapshot {
        let states = self.states();
        let tracked = states.get(name);
        let outcome = tracked.and_then(|tracked| tracked.outcome.clone());
        StateSnapshot {
            status: outcome
                .as_ref()
                .map_or(ConnectionStatus::Unknown, |outcome| outcome.status),
            message: outcome.as_ref().map_or_else(
                || "not verified since the daemon started".to_owned(),
                |outcome| outcome.message.clone(),
            ),
            last_verified_unix: tracked
                .and_then(|tracked| tracked.last_verified)
                .and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok())
                .and_then(|since| i64::try_from(since.as_secs()).ok()),
            display_name: outcome
                .as_ref()
                .map(|o| o.display_name.clone())
                .unwrap_or_default(),
            account_id: outcome
                .as_ref()
                .map(|o| o.account_id.clone())
                .unwrap_or_default(),
            project_keys: outcome.map(|o| o.project_keys).unwrap_or_default(),
            consecutive_failures: tracked.map_or(0, |tracked| tracked.consecutive_failures),
        }
    }

    /// Records a check's outcome. Refusals in a row past the threshold become FAILED:
    /// retrying the same credentials again and again only locks accounts.
    fn record(&self, name: &str, mut outcome: Outcome) -> StateSnapshot {
        {
            let mut states = self.states();
            let tracked = states.entry(name.to_owned()).or_default();
            match outcome.status {
                ConnectionStatus::Connected => tracked.consecutive_failures = 0,
                ConnectionStatus::NeedsReauthorization => {
                    tracked.consecutive_failures += 1;
                    if tracked.consecutive_failures >= self.failure_threshold {
                        outcome.status = ConnectionStatus::Failed;
                        outcome.message = format!(
                            "{} (refused {} times in a row)",
                            outcome.message, tracked.consecutive_failures
                        );
                    }
                }
                ConnectionStatus::Failed
                | ConnectionStatus::Unreachable
                | ConnectionStatus::Unknown => {}
            }
            let changed = tracked.outcome.as_ref().map(|o| (o.status, &o.message))
                != Some((outcome.status, &outcome.message));
            if changed {
                tracing::info!(connection = %name, status = outcome.status.name(), "{}", outcome.message);
            }
            tracked.outcome = Some(outcome);
            tracked.last_verified = Some(std::time::SystemTime::now());
            if !changed {
                drop(states);
                return self.state(name);
            }
        }
        let state = self.state(name);
        // No watcher is not an error.
        let _ = self.changes.send((name.to_owned(), state.clone()));
        state
    }

    pub(crate) async fn verify_connection(
        &self,
        name: &str,
        today: time::Date,
    ) -> Result<StateSnapshot, JiraError> {
        let credentials = self.credentials(name, today).await?;
        let http = self.http(name, &self.connection(name)?.network)?;
        let outcome = verify(&http, &credentials).await;
        Ok(self.record(name, outcome))
    }

    /// A component got 401: re-read the token; a different one is verified and handed
    /// out, the same one counts as a refusal.
    pub(crate) async fn report_auth_failure(
        &self,
        name: &str,
        today: time::Date,
    ) -> Result<AuthFailureOutcome, JiraError> {
        let connection = self.connection(name)?;
        let previous = self
            .states()
            .get_mut(name)
            .and_then(|tracked| tracked.last_token.take());
        self.resolver
            .invalidate(&connection.token_definition)
            .await
            .map_err(|source| JiraError::Resolve {
                connection: name.to_owned(),
                source,
            })?;
        let credentials = self.credentials(name, today).await?;
        let same = previous
            .as_ref()
            .is_some_and(|previous| previous.expose() == credentials.token.expose());
        if same {
            let state = self.record(
                name,
                Outcome {
                    status: ConnectionStatus::NeedsReauthorization,
                    message: format!(
                        "Jira refused the token of `{name}` and the vault still holds the same token: create a new API token and store it in the vault; components pick it up on their next call"
                    ),
                    display_name: String::new(),
                    account_id: String::new(),
                    project_keys: Vec::new(),
                },
            );
            return Ok(AuthFailureOutcome {
                token_changed: false,
                state,
                credentials: None,
            });
        }
        let http = self.http(name, &connection.network)?;
        let outcome = verify(&http, &credentials).await;
        let state = self.record(name, outcome);
        Ok(AuthFailureOutcome {
            token_changed: previous.is_some(),
            state,
            credentials: Some(credentials),
        })
    }

    pub(crate) fn connections(&self) -> &BTreeMap<String, ConnectionConfig> {
        &self.connections
    }

    fn connection(&self, name: &str) -> Result<&ConnectionConfig, JiraError> {
        self.connections
            .get(name)
            .ok_or_else(|| JiraError::UnknownConnection {
                name: name.to_owned(),
            })
    }

    pub(crate) async fn credentials(
        &self,
        name: &str,
        today: time::Date,
    ) -> Result<Credentials, JiraError> {
        let connection = self.connection(name)?;
        let resolve_error = |source| JiraError::Resolve {
            connection: name.to_owned(),
            source,
        };
        let token = self
            .resolver
            .resolve(&connection.token_definition)
            .await
            .map_err(resolve_error)?;
        let token_text = token
            .secret
            .value
            .expose_str()
            .ok_or_else(|| JiraError::NotText {
                connection: name.to_owned(),
                what: "token",
            })?;
        let mut warnings = token_warnings(name, token_text);
        let username = match &connection.email {
            None => String::new(),
            Some(EmailSource::Literal(email)) => email.clone(),
            Some(EmailSource::Definition(definition)) => {
                let email = self
                    .resolver
                    .resolve(definition)
                    .await
                    .map_err(resolve_error)?;
                let text = email
                    .secret
                    .value
                    .expose_str()
                    .ok_or_else(|| JiraError::NotText {
                        connection: name.to_owned(),
                        what: "email",
                    })?;
                if !looks_like_email(text) {
                    warnings.push(format!(
                        "the email of Jira connection `{name}` does not look like an email address; Jira Cloud wants the account's email, not its display name"
                    ));
                }
                text.to_owned()
            }
        };
        let (scheme, authorization) = match connection.deployment {
            Deployment::DataCenter => (
                Scheme::Bearer,
                Zeroizing::new(format!("Bearer {token_text}")),
            ),
            Deployment::Cloud | Deployment::CloudScoped => {
                let pair = Zeroizing::new(format!("{username}:{token_text}"));
                let encoded = Zeroizing::new(
                    base64::engine::general_purpose::STANDARD.encode(pair.as_bytes()),
                );
                (
                    Scheme::Basic,
                    Zeroizing::new(format!("Basic {}", encoded.as_str())),
                )
            }
        };
        let base_url = match connection.deployment {
            Deployment::CloudScoped => {
                format!("{GATEWAY}/{}", self.cloud_id(name, connection).await?)
            }
            Deployment::Cloud | Deployment::DataCenter => connection.site_url.clone(),
        };
        let days_left = connection
            .expires_at
            .map(|expires| (expires - today).whole_days());
        if let (Some(expires), Some(days)) = (connection.expires_at, days_left) {
            if days < 0 {
                warnings.push(format!(
                    "the token of Jira connection `{name}` expired on {expires} ({} days ago): create a new API token and store it in the vault",
                    -days
                ));
            } else if days <= self.expiry_warning_days {
                warnings.push(format!(
                    "the token of Jira connection `{name}` expires on {expires}, in {days} days: create a new API token and store it in the vault before then"
                ));
            }
        }
        for warning in &warnings {
            tracing::warn!(connection = %name, "{warning}");
        }
        self.states().entry(name.to_owned()).or_default().last_token =
            Some(SecretValue::from(token_text));
        Ok(Credentials {
            connection: name.to_owned(),
            deployment: connection.deployment,
            base_url,
            site_url: connection.site_url.clone(),
            scheme,
            username,
            token: SecretValue::from(token_text),
            authorization: SecretValue::from(authorization.as_str()),
            project: connection.project.clone(),
            expires_at: connection.expires_at,
            days_left,
            warnings,
        })
    }

    /// The site's cloud id, from `/_edge/tenant_info`, which answers without login.
    async fn cloud_id(
        &self,
        connection: &str,
        config: &ConnectionConfig,
    ) -> Result<String, JiraError> {
        let site = config.site_url.as_str();
        if let Some(known) = self
            .cloud_ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(site)
        {
            return Ok(known.clone());
        }
        let failed = |source| JiraError::CloudId {
            connection: connection.to_owned(),
            site: site.to_owned(),
            source,
        };
        let response = self
            .http(connection, &config.network)?
            .get(format!("{site}/_edge/tenant_info"))
            .send()
            .await
            .map_err(|err| failed(CloudIdError::Request(err)))?;
        if !response.status().is_success() {
            return Err(failed(CloudIdError::Status(response.status())));
        }
        let body = response
            .bytes()
            .await
            .map_err(|err| failed(CloudIdError::Body(err)))?;
        let cloud_id = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|info| info["cloudId"].as_str().map(str::to_owned))
            .filter(|id| {
                !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
            .ok_or_else(|| failed(CloudIdError::NoCloudId))?;
        self.cloud_ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(site.to_owned(), cloud_id.clone());
        Ok(cloud_id)
    }
}
