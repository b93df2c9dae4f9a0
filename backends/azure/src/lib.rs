//! The `azure_key_vault` backend, on Microsoft's official `azure_security_keyvault_secrets`
//! and `azure_identity` crates.
//!
//! Token acquisition, the Key Vault challenge handshake, and retries (Retry-After on
//! 429, backoff on 5xx and connection errors) are the official crates'; this crate
//! chooses the credential, builds the HTTPS client they use (extra trusted roots,
//! timeouts), and maps their errors. No second retry loop is stacked on theirs.
#![forbid(unsafe_code)]

mod config;
mod error;
#[cfg(any(test, feature = "test-util"))]
pub mod fake;
mod http;

/// Entry points for the fuzz targets in `fuzz/` (the `fuzzing` feature); not an API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    /// Maps a Key Vault HTTP error answer with `status` and `body` as a failed read
    /// would, and returns the message the caller would see.
    pub fn map_error_body(status: u16, body: &[u8]) -> String {
        crate::error::map_status_body(status, body)
    }
}

use config::validate_secret_name;
pub use config::{AzureConfig, CredentialConfig, RawAzureConfig, SecretSource};
use std::any::Any;
use vaultbridge_backend_core::config::{BackendSettings, BackendType, Section};

use async_trait::async_trait;
use azure_core::credentials::{Secret as CredentialSecret, TokenCredential};
use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions, Transport};
use azure_security_keyvault_secrets::models::SecretClientGetSecretOptions;
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use vaultbridge_backend_core::config::{ProcessVars, Vars};
use vaultbridge_backend_core::{
    Backend, BackendError, Capabilities, Fetched, SecretRef, SecretValue, VersionSelector,
    pick_json_key,
};

pub const KIND: &str = "azure_key_vault";

/// Key Vault secrets are text, versioned by id, with no stages.
pub const CAPABILITIES: Capabilities = {
    let mut capabilities = Capabilities::text_only();
    capabilities.version_ids = true;
    capabilities
};

/// The metadata key under which a secret's content type is returned.
pub const CONTENT_TYPE: &str = "content_type";

pub struct AzureBackend {
    client: SecretClient,
    vault: String,
}

impl fmt::Debug for AzureBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureBackend")
            .field("vault", &self.vault)
            .finish_non_exhaustive()
    }
}

/// Where the `Auto` credential looks: the process environment, or a map in tests.
pub(crate) type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

fn process_env(name: &str) -> Option<String> {
    ProcessVars.var(name).filter(|value| !value.is_empty())
}

impl AzureBackend {
    /// Builds the client and the credential. No network call is made: a token is
    /// fetched on first use.
    pub fn connect(config: &AzureConfig) -> Result<Self, BackendError> {
        Self::connect_with_env(config, &process_env)
    }

    pub(crate) fn connect_with_env(
        config: &AzureConfig,
        env: EnvLookup<'_>,
    ) -> Result<Self, BackendError> {
        let transport = http::transport(config)?;
        let credential = credential(config, &transport, env)?;
        Self::with_credential(config, transport, credential)
    }

    fn with_credential(
        config: &AzureConfig,
        transport: Transport,
        credential: Arc<dyn TokenCredential>,
    ) -> Result<Self, BackendError> {
        let options = SecretClientOptions {
            client_options: ClientOptions {
                transport: Some(transport),
                retry: retry_options(config),
                ..ClientOptions::default()
            },
            ..SecretClientOptions::default()
        };
        let client =
            SecretClient::new(&config.vault_url, credential, Some(options)).map_err(|err| {
                BackendError::invalid_config(format!(
                    "cannot use vault URL `{}`: {err}",
                    config.vault_url
                ))
            })?;
        Ok(Self {
            client,
            vault: config.vault_url.clone(),
        })
    }

    /// The HTTPS transport this config describes (for tests that build their own
    /// credential).
    pub fn transport(config: &AzureConfig) -> Result<Transport, BackendError> {
        http::transport(config)
    }
}

/// The official client's own exponential retry, bounded by the config so that a
/// caller never waits past `operation_timeout` (its default is 8 retries in 60 s).
fn retry_options(config: &AzureConfig) -> RetryOptions {
    RetryOptions::exponential(ExponentialRetryOptions {
        max_retries: config.max_attempts.saturating_sub(1),
        max_total_elapsed: to_time(config.operation_timeout),
        max_delay: to_time(config.operation_timeout.min(Duration::from_secs(4))),
        ..ExponentialRetryOptions::default()
    })
}

fn to_time(duration: Duration) -> azure_core::time::Duration {
    azure_core::time::Duration::milliseconds(
        i64::try_from(duration.as_millis()).unwrap_or(i64::MAX),
    )
}

fn client_options(
    config: &AzureConfig,
    transport: &Transport,
) -> Result<ClientOptions, BackendError> {
    let mut options = ClientOptions {
        transport: Some(transport.clone()),
        retry: retry_options(config),
        ..ClientOptions::default()
    };
    if let Some(host) = &config.authority_host {
        if !host.starts_with("https://") {
            return Err(BackendError::invalid_config(format!(
                "authority_host must be an https:// URL, got `{host}`"
            )));
        }
        let mut custom = azure_core::cloud::CustomConfiguration::default();
        custom.authority_host = host.clone();
        options.cloud = Some(Arc::new(custom.into()));
    }
    Ok(options)
}

fn credential(
    config: &AzureConfig,
    transport: &Transport,
    env: EnvLookup<'_>,
) -> Result<Arc<dyn TokenCredential>, BackendError> {
    let options = client_options(config, transport)?;
    match &config.credential {
        CredentialConfig::Auto => {
            let workload = [
                "AZURE_FEDERATED_TOKEN_FILE",
                "AZURE_CLIENT_ID",
                "AZURE_TENANT_ID",
            ]
            .iter()
            .all(|name| env(name).is_some());
            if workload {
                return workload_identity(None, None, None, options, env);
            }
            let managed = managed_identity(None, options)?;
            let cli = azure_cli()?;
            Ok(Arc::new(http::FirstThatWorks::new(vec![
                ("managed identity", managed),
                ("Azure CLI login", cli),
            ])))
        }
        CredentialConfig::WorkloadIdentity {
            tenant_id,
            client_id,
            token_file,
        } => workload_identity(
            tenant_id.clone(),
            client_id.clone(),
            token_file.clone(),
            options,
            env,
        ),
        CredentialConfig::ManagedIdentity { client_id } => {
            managed_identity(client_id.clone(), options)
        }
        CredentialConfig::ClientSecret {
            tenant_id,
            client_id,
            secret,
        } => {
            let secret = read_client_secret(secret)?;
            let credential: Arc<dyn TokenCredential> = azure_identity::ClientSecretCredential::new(
                tenant_id,
                client_id.clone(),
                secret,
                Some(azure_identity::ClientSecretCredentialOptions {
                    client_options: options,
                }),
            )
            .map_err(|err| setup_failed("client secret", &err))?;
            Ok(credential)
        }
        CredentialConfig::AzureCli => azure_cli(),
    }
}

fn setup_failed(what: &str, err: &azure_core::Error) -> BackendError {
    BackendError::invalid_config(format!("cannot set up the {what} credential: {err}"))
}

fn workload_identity(
    tenant_id: Option<String>,
    client_id: Option<String>,
    token_file: Option<PathBuf>,
    options: ClientOptions,
    env: EnvLookup<'_>,
) -> Result<Arc<dyn TokenCredential>, BackendError> {
    let credential: Arc<dyn TokenCredential> = azure_identity::WorkloadIdentityCredential::new(
        Some(azure_identity::WorkloadIdentityCredentialOptions {
            credential_options: azure_identity::ClientAssertionCredentialOptions {
                client_options: options,
            },
            tenant_id: tenant_id.or_else(|| env("AZURE_TENANT_ID")),
            client_id: client_id.or_else(|| env("AZURE_CLIENT_ID")),
            token_file_path: token_file
                .or_else(|| env("AZURE_FEDERATED_TOKEN_FILE").map(PathBuf::from)),
        }),
    )
    .map_err(|err| setup_failed("workload identity", &err))?;
    Ok(credential)
}

fn managed_identity(
    client_id: Option<String>,
    options: ClientOptions,
) -> Result<Arc<dyn TokenCredential>, BackendError> {
    let credential: Arc<dyn TokenCredential> = azure_identity::ManagedIdentityCredential::new(
        Some(azure_identity::ManagedIdentityCredentialOptions {
            user_assigned_id: client_id.map(azure_identity::UserAssignedId::ClientId),
            client_options: options,
        }),
    )
    .map_err(|err| setup_failed("managed identity", &err))?;
    Ok(credential)
}

fn azure_cli() -> Result<Arc<dyn TokenCredential>, BackendError> {
    let credential: Arc<dyn TokenCredential> = azure_identity::AzureCliCredential::new(None)
        .map_err(|err| setup_failed("Azure CLI", &err))?;
    Ok(credential)
}

fn read_client_secret(source: &SecretSource) -> Result<CredentialSecret, BackendError> {
    let text = match source {
        SecretSource::Env(name) => process_env(name).ok_or_else(|| {
            BackendError::invalid_config(format!(
                "the client secret's environment variable `{name}` is not set"
            ))
        })?,
        SecretSource::File(path) => std::fs::read_to_string(path).map_err(|err| {
            BackendError::invalid_config(format!(
                "cannot read the client secret file `{}`: {err}",
                path.display()
            ))
        })?,
    };
    // A secret file usually ends with a newline that is not part of the secret.
    Ok(CredentialSecret::new(text.trim().to_owned()))
}

#[async_trait]
impl Backend for AzureBackend {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    async fn fetch(&self, secret: &SecretRef) -> Result<Fetched, BackendError> {
        validate_secret_name(&secret.id).map_err(BackendError::invalid_config)?;
        let version = match &secret.version {
            VersionSelector::Latest => None,
            VersionSelector::Id(id) => Some(id.clone()),
            VersionSelector::Stage(_) => {
                return Err(BackendError::invalid_config(
                    "Key Vault has no version stages; pin a version id instead",
                ));
            }
        };
        let context = error::Context {
            secret: &secret.id,
            version: version.as_deref(),
            vault: &self.vault,
        };
        let options = SecretClientGetSecretOptions {
            secret_version: version.clone(),
            ..Default::default()
        };
        let response = self
            .client
            .get_secret(&secret.id, Some(options))
            .await
            .map_err(|err| error::map(&err, &context))?;
        let model = response.into_model().map_err(|err| {
            BackendError::unavailable(format!(
                "vault `{}` sent an answer for secret `{}` that could not be read: {}",
                self.vault,
                secret.id,
                err.kind()
            ))
        })?;
        let Some(text) = model.value else {
            return Err(BackendError::failed_precondition(format!(
                "secret `{}` in vault `{}` has no value",
                secret.id, self.vault
            )));
        };
        let value = SecretValue::from(text);
        let value = match &secret.key {
            None => value,
            Some(key) => pick_json_key(&value, key, &format!("secret `{}`", secret.id))?,
        };
        let mut fetched = Fetched::new(value);
        if let Some(version) = model.id.as_deref().and_then(version_from_id) {
            fetched = fetched.with_version(version);
        }
        if let Some(content_type) = model.content_type {
            fetched = fetched.with_metadata(CONTENT_TYPE, content_type);
        }
        Ok(fetched)
    }
}

/// A secret id is `https://<vault>/secrets/<name>/<version>`.
fn version_from_id(id: &str) -> Option<String> {
    let mut parts = id.rsplit('/');
    let version = parts.next()?;
    let _name = parts.next()?;
    (parts.next()? == "secrets" && !version.is_empty()).then(|| version.to_owned())
}

impl BackendType for AzureConfig {
    const KIND: &'static str = KIND;
    type Raw = RawAzureConfig;

    fn check(raw: RawAzureConfig, section: &mut Section<'_, '_>) -> Option<Self> {
        config::check(raw, section)
    }
}

#[async_trait]
impl BackendSettings for AzureConfig {
    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    fn check_secret_id(&self, id: &str) -> Result<(), String> {
        validate_secret_name(id)
    }

    async fn build(&self) -> Result<Arc<dyn Backend>, BackendError> {
        Ok(Arc::new(AzureBackend::connect(self)?))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests;
