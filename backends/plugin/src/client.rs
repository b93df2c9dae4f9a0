//! The daemon's side of a plugin: the gRPC client, the session (Describe, Configure)
//! redone after each restart, and the `Backend` implementation.

use crate::config::{Launch, PluginConfig};
use crate::errors;
use crate::process::Supervisor;
use crate::proto::v1::{self, backend_client::BackendClient};
use async_trait::async_trait;
use hyper_util::rt::TokioIo;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint, Uri};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use vaultbridge_backend_core::{
    Backend, BackendError, Capabilities, Fetched, SecretRef, SecretValue, VersionSelector,
    pick_json_key,
};

/// What the plugin said it can do, for the process it was asked of.
#[derive(Debug, Clone, Copy)]
struct Session {
    generation: u64,
    capabilities: Capabilities,
    keys: bool,
    max_batch: usize,
    revisions: bool,
}

/// A backend served by a plugin.
pub struct PluginBackend {
    /// How messages name the plugin: its socket path.
    name: String,
    config: PluginConfig,
    client: BackendClient<Channel>,
    health: HealthClient<Channel>,
    session: tokio::sync::Mutex<Option<Session>>,
    /// The last session's answers, for the trait's synchronous accessors.
    described: Mutex<Option<Session>>,
    revision: Arc<AtomicU64>,
    revision_known: Arc<AtomicBool>,
    revision_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    supervisor: Option<Supervisor>,
    /// The private directory of a started plugin's socket, removed on drop.
    _socket_dir: Option<tempfile::TempDir>,
}

impl fmt::Debug for PluginBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginBackend")
            .field("plugin", &self.name)
            .finish_non_exhaustive()
    }
}

impl Drop for PluginBackend {
    fn drop(&mut self) {
        if let Ok(mut task) = self.revision_task.lock()
            && let Some(task) = task.take()
        {
            task.abort();
        }
    }
}

impl PluginBackend {
    /// Starts the plugin when the config has a `command`, and makes a client that
    /// connects on first use (and again after the plugin restarts). Needs a Tokio
    /// runtime.
    pub fn start(config: PluginConfig) -> Result<Arc<Self>, BackendError> {
        let (socket, supervisor, socket_dir) = match &config.launch {
            Launch::Socket(socket) => (socket.clone(), None, None),
            Launch::Command { argv, env, socket } => {
                if argv.is_empty() {
                    return Err(BackendError::invalid_config(
                        "a plugin `command` needs at least the program to run",
                    ));
                }
                let (socket, dir) = match socket {
                    Some(socket) => (socket.clone(), None),
                    None => {
                        let dir = tempfile::Builder::new()
                            .prefix("vaultbridge-plugin-")
                            .tempdir()
                            .map_err(|err| {
                                BackendError::internal(
                                    "cannot create a directory for the plugin's socket",
                                )
                                .with_source(err)
                            })?;
                        (dir.path().join("plugin.sock"), Some(dir))
                    }
                };
                let name = format!("`{}`", argv[0]);
                let supervisor = Supervisor::start(name, argv.clone(), env.clone(), socket.clone());
                (socket, Some(supervisor), dir)
            }
        };
        let channel = unix_channel(socket.clone(), config.timeout);
        Ok(Arc::new(Self {
            name: format!("at `{}`", socket.display()),
            client: BackendClient::new(channel.clone()),
            health: HealthClient::new(channel),
            config,
            session: tokio::sync::Mutex::new(None),
            described: Mutex::new(None),
            revision: Arc::new(AtomicU64::new(0)),
            revision_known: Arc::new(AtomicBool::new(false)),
            revision_task: Mutex::new(None),
            supervisor,
            _socket_dir: socket_dir,
        }))
    }

    /// How messages name this plugin (`at `/run/x.sock``).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits until the plugin's health service answers SERVING, then asks it what it
    /// can do and configures it; unavailable after `start_timeout`.
    pub async fn ready(&self) -> Result<(), BackendError> {
        let deadline = Instant::now() + self.config.start_timeout;
        let mut pause = Duration::from_millis(10);
        loop {
            let mut health = self.health.clone();
            let check = health.check(HealthCheckRequest {
                service: String::new(),
            });
            let serving = matches!(
                tokio::time::timeout(self.config.timeout, check).await,
                Ok(Ok(answer)) if answer.get_ref().status == ServingStatus::Serving as i32
            );
            if serving {
                return self.session("(describe)").await.map(|_| ());
            }
            if Instant::now() >= deadline {
                return Err(BackendError::unavailable(format!(
                    "plugin {} did not answer SERVING within {:?}",
                    self.name, self.config.start_timeout
                )));
            }
            // Polling is the health protocol's way (Watch is optional for plugins).
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// Logs once the plugin is ready, or why it is not yet; fetches meanwhile fail as
    /// temporarily unavailable.
    pub(crate) fn announce_when_ready(self: &Arc<Self>) {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let Some(backend) = weak.upgrade() else {
                return;
            };
            match backend.ready().await {
                Ok(()) => tracing::info!(plugin = %backend.name, "plugin ready"),
                Err(err) => tracing::warn!(plugin = %backend.name, error = %err,
                    "plugin not ready; its secrets are unavailable until it is"),
            }
        });
    }

    fn generation(&self) -> u64 {
        self.supervisor.as_ref().map_or(0, Supervisor::generation)
    }

    /// The plugin's answers to Describe, asking (and configuring it) when the process
    /// changed or a call found it gone.
    async fn session(&self, secret: &str) -> Result<Session, BackendError> {
        let generation = self.generation();
        let mut current = self.session.lock().await;
        if let Some(session) = *current
            && session.generation == generation
        {
            return Ok(session);
        }
        let described = self
            .call(secret, self.client.clone().describe(v1::DescribeRequest {}))
            .await?;
        let declared = described.capabilities.unwrap_or_default();
        let mut capabilities = Capabilities::text_only();
        capabilities.version_ids = declared.version_ids;
        capabilities.version_stages = declared.version_stages;
        capabilities.binary = declared.binary;
        capabilities.nul_bytes = declared.binary && declared.nul_bytes;
        let session = Session {
            generation,
            capabilities,
            keys: declared.keys,
            max_batch: usize::try_from(declared.max_batch).unwrap_or(1).max(1),
            revisions: declared.revisions,
        };
        let configure = v1::ConfigureRequest {
            config: Some(to_struct(&self.config.plugin_config)),
        };
        self.call(secret, self.client.clone().configure(configure))
            .await?;
        if session.revisions {
            self.poll_revision().await;
            self.start_revision_task();
        }
        *current = Some(session);
        if let Ok(mut described) = self.described.lock() {
            *described = Some(session);
        }
        Ok(session)
    }

    fn forget_session(&self) {
        if let Ok(mut current) = self.session.try_lock() {
            *current = None;
        }
    }

    async fn poll_revision(&self) {
        poll_revision(
            self.client.clone(),
            self.config.timeout,
            &self.revision,
            &self.revision_known,
        )
        .await;
    }

    fn start_revision_task(&self) {
        let Ok(mut task) = self.revision_task.lock() else {
            return;
        };
        if task.is_some() {
            return;
        }
        let client = self.client.clone();
        let timeout = self.config.timeout;
        let interval = self.config.revision_interval;
        let (revision, known) = (self.revision.clone(), self.revision_known.clone());
        *task = Some(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            loop {
                ticks.tick().await;
                poll_revision(client.clone(), timeout, &revision, &known).await;
            }
        }));
    }

    /// One call with the configured timeout; a plugin that cannot be reached or does
    /// not answer is temporarily unavailable.
    async fn call<T>(
        &self,
        secret: &str,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, BackendError> {
        match tokio::time::timeout(self.config.timeout, call).await {
            Err(_) => {
                self.forget_session();
                Err(errors::unreachable(
                    secret,
                    &self.name,
                    &format!("no answer within {:?}", self.config.timeout),
                ))
            }
            Ok(Ok(answer)) => Ok(answer.into_inner()),
            Ok(Err(status)) => {
                if matches!(
                    status.code(),
                    tonic::Code::Unavailable | tonic::Code::Unknown
                ) {
                    // The process may be a new one that was never configured.
                    self.forget_session();
                }
                if errors::failed_here(&status) {
                    return Err(errors::unreachable(secret, &self.name, status.message()));
                }
                Err(errors::from_status(&status, secret, &self.name))
            }
        }
    }

    /// The secret as the plugin is asked for it, after checking the plugin can serve
    /// the version asked for.
    fn request(session: &Session, secret: &SecretRef) -> Result<v1::SecretRef, BackendError> {
        let (version_id, version_stage) = match &secret.version {
            VersionSelector::Latest => (None, None),
            VersionSelector::Id(id) if session.capabilities.version_ids => (Some(id.clone()), None),
            VersionSelector::Stage(stage) if session.capabilities.version_stages => {
                (None, Some(stage.clone()))
            }
            VersionSelector::Id(_) | VersionSelector::Stage(_) => {
                return Err(BackendError::invalid_config(format!(
                    "secret `{}`: this plugin has no versions of that kind; remove the \
                     version from the definition",
                    secret.id
                )));
            }
        };
        Ok(v1::SecretRef {
            id: secret.id.clone(),
            key: if session.keys {
                secret.key.clone()
            } else {
                None
            },
            version_id,
            version_stage,
        })
    }

    /// The plugin's answer as a fetched secret: the bytes go into a `SecretValue` at
    /// once, and a key is picked here when the plugin does not pick keys.
    fn fetched(
        session: &Session,
        secret: &SecretRef,
        answer: v1::FetchResponse,
    ) -> Result<Fetched, BackendError> {
        let value = SecretValue::new(answer.value);
        let value = match &secret.key {
            Some(key) if !session.keys => {
                pick_json_key(&value, key, &format!("secret `{}`", secret.id))?
            }
            _ => value,
        };
        let mut fetched = Fetched::new(value);
        fetched.version = answer.version_id;
        fetched.metadata = answer.metadata.into_iter().collect();
        Ok(fetched)
    }

    async fn fetch_batch(
        &self,
        session: &Session,
        secrets: &[SecretRef],
    ) -> Vec<Result<Fetched, BackendError>> {
        let mut results: Vec<Option<Result<Fetched, BackendError>>> =
            secrets.iter().map(|_| None).collect();
        let mut asked = Vec::new();
        let mut refs = Vec::new();
        for (index, secret) in secrets.iter().enumerate() {
            match Self::request(session, secret) {
                Ok(request) => {
                    asked.push(index);
                    refs.push(request);
                }
                Err(err) => results[index] = Some(Err(err)),
            }
        }
        if !refs.is_empty() {
            let mut client = self.client.clone();
            let call = client.fetch_many(v1::FetchManyRequest { secrets: refs });
            let first = &secrets[asked[0]].id;
            match self.call(first, call).await {
                Ok(answer) if answer.results.len() == asked.len() => {
                    for (index, result) in asked.iter().zip(answer.results) {
                        let secret = &secrets[*index];
                        results[*index] = Some(match result.result {
                            Some(v1::fetch_result::Result::Secret(answer)) => {
                                Self::fetched(session, secret, answer)
                            }
                            Some(v1::fetch_result::Result::Error(error)) => Err(errors::from_code(
                                tonic::Code::from_i32(error.code),
                                &error.kind,
                                &error.message,
                                &secret.id,
                                &self.name,
                            )),
                            None => Err(BackendError::internal(format!(
                                "plugin {} answered no result for secret `{}`",
                                self.name, secret.id
                            ))),
                        });
                    }
                }
                Ok(answer) => {
                    for index in &asked {
                        results[*index] = Some(Err(BackendError::internal(format!(
                            "plugin {} answered {} results for {} secrets (secret `{}`)",
                            self.name,
                            answer.results.len(),
                            asked.len(),
                            secrets[*index].id
                        ))));
                    }
                }
                Err(err) => {
                    for index in &asked {
                        results[*index] = Some(Err(for_secret(&err, &secrets[*index].id)));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|result| {
                result.unwrap_or_else(|| Err(BackendError::internal("a batch entry was lost")))
            })
            .collect()
    }
}

/// `err` for another secret of the same failed call, naming that secret.
fn for_secret(err: &BackendError, secret: &str) -> BackendError {
    BackendError::new(err.kind(), format!("{} (secret `{secret}`)", err.message()))
        .temporary(err.is_temporary())
}

async fn poll_revision(
    mut client: BackendClient<Channel>,
    timeout: Duration,
    revision: &AtomicU64,
    known: &AtomicBool,
) {
    if let Ok(Ok(answer)) =
        tokio::time::timeout(timeout, client.revision(v1::RevisionRequest {})).await
    {
        revision.store(answer.into_inner().revision, Ordering::Release);
        known.store(true, Ordering::Release);
    }
}

#[async_trait]
impl Backend for PluginBackend {
    fn kind(&self) -> &'static str {
        crate::KIND
    }

    fn capabilities(&self) -> Capabilities {
        match self.described.lock().ok().and_then(|d| *d) {
            Some(session) => session.capabilities,
            None => Capabilities::versioned_binary(),
        }
    }

    async fn fetch(&self, secret: &SecretRef) -> Result<Fetched, BackendError> {
        let session = self.session(&secret.id).await?;
        let request = Self::request(&session, secret)?;
        let mut client = self.client.clone();
        let call = client.fetch(v1::FetchRequest {
            secret: Some(request),
        });
        let answer = self.call(&secret.id, call).await?;
        Self::fetched(&session, secret, answer)
    }

    fn max_batch(&self) -> usize {
        self.described
            .lock()
            .ok()
            .and_then(|d| *d)
            .map_or(1, |session| session.max_batch)
    }

    async fn fetch_many(&self, secrets: &[SecretRef]) -> Vec<Result<Fetched, BackendError>> {
        let Some(first) = secrets.first() else {
            return Vec::new();
        };
        let session = match self.session(&first.id).await {
            Ok(session) => session,
            Err(err) => {
                return secrets
                    .iter()
                    .map(|s| Err(for_secret(&err, &s.id)))
                    .collect();
            }
        };
        if session.max_batch <= 1 {
            let mut results = Vec::with_capacity(secrets.len());
            for secret in secrets {
                results.push(self.fetch(secret).await);
            }
            return results;
        }
        let mut results = Vec::with_capacity(secrets.len());
        for chunk in secrets.chunks(session.max_batch) {
            results.extend(self.fetch_batch(&session, chunk).await);
        }
        results
    }

    /// Stops a plugin vaultbridge started, waiting until it has exited.
    async fn shutdown(&self) {
        if let Ok(mut task) = self.revision_task.lock()
            && let Some(task) = task.take()
        {
            task.abort();
        }
        if let Some(supervisor) = &self.supervisor {
            supervisor.shutdown().await;
        }
    }

    fn revision(&self, _now: Instant) -> Option<u64> {
        let revisions = self
            .described
            .lock()
            .ok()
            .and_then(|d| *d)
            .is_some_and(|session| session.revisions);
        (revisions && self.revision_known.load(Ordering::Acquire))
            .then(|| self.revision.load(Ordering::Acquire))
    }
}

/// A channel to a Unix socket that connects on first use and reconnects after the
/// plugin restarts.
fn unix_channel(socket: PathBuf, timeout: Duration) -> Channel {
    // The authority is never resolved: the connector below ignores it.
    Endpoint::from_static("http://plugin.invalid")
        .connect_timeout(timeout)
        .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
}

fn to_struct(map: &serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map
            .iter()
            .map(|(key, value)| (key.clone(), to_value(value)))
            .collect(),
    }
}

fn to_value(value: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(flag) => Kind::BoolValue(*flag),
        serde_json::Value::Number(number) => Kind::NumberValue(number.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(text) => Kind::StringValue(text.clone()),
        serde_json::Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(to_value).collect(),
        }),
        serde_json::Value::Object(map) => Kind::StructValue(to_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}
