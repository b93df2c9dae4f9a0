//! The `aws_secrets_manager` backend, on the official AWS SDK.
//!
//! Credentials, region, retries with backoff and jitter, and role assumption are the
//! SDK's (`aws-config`'s default chain: environment, shared profile, web identity /
//! IRSA, EKS Pod Identity, ECS, IMDS); this crate only configures them. Resolves that
//! arrive together go through `BatchGetSecretValue`, 20 secrets a call, and several
//! keys of one secret are fetched once.
#![forbid(unsafe_code)]

mod config;
mod error;
#[cfg(any(test, feature = "test-util"))]
pub mod moto;

pub use config::{AssumeRole, AwsConfig, RawAwsConfig};

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_secretsmanager::Client;
use error::{Context, Operation};
use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use vaultbridge_backend_core::config::{BackendSettings, BackendType, Section};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use vaultbridge_backend_core::{
    Backend, BackendError, Capabilities, ErrorKind, Fetched, SecretRef, SecretValue,
    VersionSelector, pick_json_key,
};

pub const KIND: &str = "aws_secrets_manager";

pub const CAPABILITIES: Capabilities = Capabilities::versioned_binary();

/// `BatchGetSecretValue` takes at most 20 secret ids.
pub const MAX_BATCH: usize = 20;

/// The metadata key under which the version's stages are returned, comma-separated.
pub const VERSION_STAGES: &str = "version_stages";
/// The metadata keys of the secret's ARN and name as Secrets Manager answered them,
/// whichever the definition used (the AWS agent's answer carries both).
pub const ARN: &str = "arn";
pub const NAME: &str = "name";
/// When the version was created: seconds since the Unix epoch, with a fraction.
pub const CREATED_DATE: &str = "created_date";
/// Set to `true` when the secret is stored as `SecretBinary` (a binary value may be
/// valid UTF-8, so the bytes alone do not tell).
pub const SECRET_BINARY: &str = "secret_binary";

pub struct AwsBackend {
    client: Client,
    region: String,
    /// Set once the daemon's role was refused BatchGetSecretValue, so that later
    /// batches go straight to one call per secret.
    batch_denied: AtomicBool,
}

impl fmt::Debug for AwsBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsBackend")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl AwsBackend {
    /// Builds the client from the SDK's default chains and `config`. No AWS call is
    /// made here; credentials are fetched on first use.
    pub async fn connect(config: &AwsConfig) -> Self {
        Self::connect_with(config, None).await
    }

    /// As [`AwsBackend::connect`], with fixed credentials instead of the default chain
    /// (tests against an emulator).
    pub(crate) async fn connect_with(
        config: &AwsConfig,
        credentials: Option<SharedCredentialsProvider>,
    ) -> Self {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(config.connect_timeout)
            .operation_timeout(config.operation_timeout)
            .operation_attempt_timeout(config.attempt_timeout)
            .build();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .timeout_config(timeouts)
            .retry_config(RetryConfig::standard().with_max_attempts(config.max_attempts));
        if let Some(region) = &config.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(profile) = &config.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(endpoint) = &config.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(credentials) = credentials {
            loader = loader.credentials_provider(credentials);
        }
        let base = loader.load().await;
        let mut builder = aws_sdk_secretsmanager::config::Builder::from(&base);
        if let Some(role) = &config.assume_role {
            let mut provider = aws_config::sts::AssumeRoleProvider::builder(&role.role_arn)
                .session_name(role.session_name.as_deref().unwrap_or("vaultbridge"));
            if let Some(external_id) = &role.external_id {
                provider = provider.external_id(external_id);
            }
            builder = builder.credentials_provider(provider.configure(&base).build().await);
        }
        let region = base
            .region()
            .map_or_else(|| "(no region configured)".to_owned(), ToString::to_string);
        Self {
            client: Client::from_conf(builder.build()),
            region,
            batch_denied: AtomicBool::new(false),
        }
    }

    fn context<'a>(&'a self, secret: &'a str, version: &'a VersionSelector) -> Context<'a> {
        Context {
            secret,
            version,
            region: &self.region,
        }
    }

    /// One `GetSecretValue`.
    async fn get(&self, id: &str, version: &VersionSelector) -> Result<Raw, BackendError> {
        let mut request = self.client.get_secret_value().secret_id(id);
        request = match version {
            VersionSelector::Latest => request,
            VersionSelector::Id(version_id) => request.version_id(version_id),
            VersionSelector::Stage(stage) => request.version_stage(stage),
        };
        let output = request
            .send()
            .await
            .map_err(|err| error::from_sdk(err, Operation::Get, &self.context(id, version)))?;
        let facts = Facts::new(output.arn, output.name, output.created_date);
        Raw::new(
            output.secret_string,
            output
                .secret_binary
                .map(aws_sdk_secretsmanager::primitives::Blob::into_inner),
            output.version_id,
            output.version_stages.unwrap_or_default(),
            &self.context(id, version),
        )
        .map(|raw| raw.with(facts))
    }

    /// `BatchGetSecretValue` for up to [`MAX_BATCH`] ids of current versions. Ids the
    /// answer does not account for are absent from the map.
    async fn batch(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, Result<Raw, BackendError>>, BackendError> {
        let latest = VersionSelector::Latest;
        let mut found = HashMap::new();
        let mut next_token = None;
        loop {
            let output = self
                .client
                .batch_get_secret_value()
                .set_secret_id_list(Some(ids.to_vec()))
                .set_next_token(next_token.take())
                .send()
                .await
                .map_err(|err| {
                    let first = ids.first().map_or("", String::as_str);
                    error::from_sdk(err, Operation::Batch, &self.context(first, &latest))
                })?;
            for entry in output.secret_values.unwrap_or_default() {
                let Some(id) = match_requested(ids, entry.name.as_deref(), entry.arn.as_deref())
                else {
                    continue;
                };
                let facts = Facts::new(entry.arn, entry.name, entry.created_date);
                let raw = Raw::new(
                    entry.secret_string,
                    entry
                        .secret_binary
                        .map(aws_sdk_secretsmanager::primitives::Blob::into_inner),
                    entry.version_id,
                    entry.version_stages.unwrap_or_default(),
                    &self.context(id, &latest),
                )
                .map(|raw| raw.with(facts));
                found.insert(id.to_owned(), raw);
            }
            for failure in output.errors.unwrap_or_default() {
                let Some(id) = failure
                    .secret_id
                    .as_deref()
                    .filter(|id| ids.iter().any(|i| i == id))
                else {
                    continue;
                };
                let err = error::from_code(
                    failure.error_code.as_deref(),
                    failure.message.as_deref(),
                    Operation::Get,
                    &self.context(id, &latest),
                );
                found.insert(id.to_owned(), Err(err));
            }
            match output.next_token {
                Some(token) if !token.is_empty() => next_token = Some(token),
                _ => return Ok(found),
            }
        }
    }

    /// The current versions of `ids`, batched where the role allows it.
    async fn batch_or_single(&self, ids: &[String]) -> HashMap<String, Result<Raw, BackendError>> {
        let mut found = HashMap::new();
        if !self.batch_denied.load(Ordering::Relaxed) && ids.len() > 1 {
            match self.batch(ids).await {
                Ok(answered) => found = answered,
                Err(err) if err.kind() == ErrorKind::PermissionDenied => {
                    self.batch_denied.store(true, Ordering::Relaxed);
                    tracing::warn!(
                        region = %self.region,
                        "the daemon's AWS identity may not call secretsmanager:BatchGetSecretValue; \
                         fetching one secret per call from now on (grant it to make fewer calls)"
                    );
                }
                Err(err) => {
                    let err = Arc::new(err);
                    return ids
                        .iter()
                        .map(|id| (id.clone(), Err(error::shared(&err))))
                        .collect();
                }
            }
        }
        let latest = VersionSelector::Latest;
        let missing: Vec<&String> = ids.iter().filter(|id| !found.contains_key(*id)).collect();
        let singles =
            futures_util::future::join_all(missing.iter().map(|id| self.get(id, &latest))).await;
        for (id, raw) in missing.into_iter().zip(singles) {
            found.insert(id.clone(), raw);
        }
        found
    }
}

/// A batch entry names the secret by name and ARN; the request may have used either,
/// or an ARN without the random suffix AWS appends.
fn match_requested<'a>(
    ids: &'a [String],
    name: Option<&str>,
    arn: Option<&str>,
) -> Option<&'a str> {
    ids.iter()
        .find(|id| {
            Some(id.as_str()) == name
                || Some(id.as_str()) == arn
                || arn.is_some_and(|arn| id.starts_with("arn:") && arn.starts_with(id.as_str()))
        })
        .map(String::as_str)
}

/// What Secrets Manager says about a secret's version besides its value and stages.
#[derive(Debug, Default)]
struct Facts {
    arn: Option<String>,
    name: Option<String>,
    created: Option<String>,
}

impl Facts {
    fn new(
        arn: Option<String>,
        name: Option<String>,
        created: Option<aws_sdk_secretsmanager::primitives::DateTime>,
    ) -> Self {
        Self {
            arn,
            name,
            created: created.map(|date| epoch_seconds(date.secs(), date.subsec_nanos())),
        }
    }
}

/// Seconds since the epoch as the AWS agent writes `CreatedDate`: a decimal number,
/// its fraction as far as it goes (`1569534789.046`).
fn epoch_seconds(secs: i64, nanos: u32) -> String {
    if nanos == 0 {
        return secs.to_string();
    }
    let fraction = format!("{nanos:09}");
    format!("{secs}.{}", fraction.trim_end_matches('0'))
}

/// A secret's value as Secrets Manager returned it, before a key is picked.
#[derive(Debug)]
struct Raw {
    value: SecretValue,
    version: Option<String>,
    stages: Vec<String>,
    binary: bool,
    facts: Facts,
}

impl Raw {
    fn new(
        text: Option<String>,
        binary: Option<Vec<u8>>,
        version: Option<String>,
        stages: Vec<String>,
        context: &Context<'_>,
    ) -> Result<Self, BackendError> {
        let is_binary = text.is_none();
        let value = match (text, binary) {
            (Some(text), _) => SecretValue::from(text),
            (None, Some(bytes)) => SecretValue::new(bytes),
            (None, None) => {
                return Err(BackendError::failed_precondition(format!(
                    "secret `{}` in {} has no value in this version",
                    context.secret, context.region
                )));
            }
        };
        Ok(Self {
            value,
            version,
            stages,
            binary: is_binary,
            facts: Facts::default(),
        })
    }

    fn with(mut self, facts: Facts) -> Self {
        self.facts = facts;
        self
    }

    /// The result for one definition: the whole value, or one key of it.
    fn serve(&self, key: Option<&str>, id: &str) -> Result<Fetched, BackendError> {
        let value = match key {
            None => SecretValue::from(self.value.expose().to_vec()),
            Some(key) => pick_json_key(&self.value, key, &format!("secret `{id}`"))?,
        };
        let mut fetched = Fetched::new(value);
        if let Some(version) = &self.version {
            fetched = fetched.with_version(version.clone());
        }
        if !self.stages.is_empty() {
            fetched = fetched.with_metadata(VERSION_STAGES, self.stages.join(","));
        }
        for (key, fact) in [
            (ARN, &self.facts.arn),
            (NAME, &self.facts.name),
            (CREATED_DATE, &self.facts.created),
        ] {
            if let Some(fact) = fact {
                fetched = fetched.with_metadata(key, fact.clone());
            }
        }
        if self.binary && key.is_none() {
            fetched = fetched.with_metadata(SECRET_BINARY, "true");
        }
        Ok(fetched)
    }
}

#[async_trait]
impl Backend for AwsBackend {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    async fn fetch(&self, secret: &SecretRef) -> Result<Fetched, BackendError> {
        self.get(&secret.id, &secret.version)
            .await?
            .serve(secret.key.as_deref(), &secret.id)
    }

    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    async fn fetch_many(&self, secrets: &[SecretRef]) -> Vec<Result<Fetched, BackendError>> {
        // One fetch per distinct (secret, version), whatever keys are read from it.
        let mut current: Vec<String> = Vec::new();
        let mut pinned: Vec<(&str, &VersionSelector)> = Vec::new();
        for secret in secrets {
            match &secret.version {
                VersionSelector::Latest => {
                    if !current.contains(&secret.id) {
                        current.push(secret.id.clone());
                    }
                }
                version => {
                    if !pinned.contains(&(secret.id.as_str(), version)) {
                        pinned.push((&secret.id, version));
                    }
                }
            }
        }
        let batches = futures_util::future::join_all(
            current
                .chunks(MAX_BATCH)
                .map(|chunk| self.batch_or_single(chunk)),
        );
        let singles = futures_util::future::join_all(
            pinned.iter().map(|(id, version)| self.get(id, version)),
        );
        let (batches, singles) = futures_util::future::join(batches, singles).await;
        // Shared, because several keys of one secret each get the secret's error.
        let current: HashMap<String, Result<Raw, Arc<BackendError>>> = batches
            .into_iter()
            .flatten()
            .map(|(id, raw)| (id, raw.map_err(Arc::new)))
            .collect();
        let pinned: Vec<((&str, &VersionSelector), Result<Raw, Arc<BackendError>>)> = pinned
            .into_iter()
            .zip(singles.into_iter().map(|raw| raw.map_err(Arc::new)))
            .collect();

        secrets
            .iter()
            .map(|secret| {
                let raw = match &secret.version {
                    VersionSelector::Latest => current.get(&secret.id),
                    version => pinned
                        .iter()
                        .find(|((id, v), _)| *id == secret.id && *v == version)
                        .map(|(_, raw)| raw),
                };
                match raw {
                    Some(Ok(raw)) => raw.serve(secret.key.as_deref(), &secret.id),
                    Some(Err(err)) => Err(error::shared(err)),
                    None => Err(BackendError::internal(format!(
                        "no answer was recorded for secret `{}`",
                        secret.id
                    ))),
                }
            })
            .collect()
    }
}

impl BackendType for AwsConfig {
    const KIND: &'static str = KIND;
    type Raw = RawAwsConfig;

    fn check(raw: RawAwsConfig, section: &mut Section<'_, '_>) -> Option<Self> {
        config::check(raw, section)
    }
}

#[async_trait]
impl BackendSettings for AwsConfig {
    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    async fn build(&self) -> Result<Arc<dyn Backend>, BackendError> {
        Ok(Arc::new(AwsBackend::connect(self).await))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests;
