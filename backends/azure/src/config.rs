//! The `azure_key_vault` backend's settings, as the config file gives them.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use vaultbridge_backend_core::config::{Section, Text};

/// The `azure_key_vault` backend instance's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureConfig {
    /// `https://<name>.vault.azure.net`, or a sovereign cloud's vault URL.
    pub vault_url: String,
    pub credential: CredentialConfig,
    /// Microsoft Entra endpoint (sovereign clouds). `None`: `AZURE_AUTHORITY_HOST`, else
    /// the public cloud.
    pub authority_host: Option<String>,
    /// Extra trusted roots (PEM), e.g. a corporate TLS proxy's.
    pub ca_file: Option<PathBuf>,
    /// Fixed addresses for host names, like curl's `--resolve`: for private endpoints
    /// without private DNS in the pod.
    pub resolve: Vec<(String, SocketAddr)>,
    pub connect_timeout: Duration,
    /// One HTTP request.
    pub request_timeout: Duration,
    /// The whole call, the official client's retries included.
    pub operation_timeout: Duration,
    /// Attempts per call (the official client's exponential retry).
    pub max_attempts: u32,
}

impl AzureConfig {
    pub fn new(vault_url: impl Into<String>, credential: CredentialConfig) -> Self {
        Self {
            vault_url: vault_url.into(),
            credential,
            authority_host: None,
            ca_file: None,
            resolve: Vec::new(),
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(10),
            operation_timeout: Duration::from_secs(10),
            max_attempts: 3,
        }
    }
}

/// How the daemon gets its Microsoft Entra token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialConfig {
    /// Workload identity when its environment variables are present, else managed
    /// identity, else the developer's Azure CLI login.
    Auto,
    /// AKS workload identity; unset fields come from `AZURE_TENANT_ID`,
    /// `AZURE_CLIENT_ID` and `AZURE_FEDERATED_TOKEN_FILE`.
    WorkloadIdentity {
        tenant_id: Option<String>,
        client_id: Option<String>,
        token_file: Option<PathBuf>,
    },
    /// System-assigned, or user-assigned with `client_id`.
    ManagedIdentity {
        client_id: Option<String>,
    },
    /// A service principal; the secret is read from an environment variable or a file,
    /// never from the config.
    ClientSecret {
        tenant_id: String,
        client_id: String,
        secret: SecretSource,
    },
    AzureCli,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
}

/// The rule Key Vault applies to secret names: 1-127 letters, digits and dashes.
pub(crate) fn validate_secret_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 127 {
        return Err(format!(
            "a Key Vault secret name is 1 to 127 characters; `{name}` has {}",
            name.len()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        let suggestion: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        return Err(format!(
            "Key Vault secret names may contain only letters, digits and dashes; `{name}` has {bad:?} (did you mean `{suggestion}`?)"
        ));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAzureConfig {
    vault_url: Option<Text>,
    credential: Option<Text>,
    tenant_id: Option<Text>,
    client_id: Option<Text>,
    client_secret_env: Option<Text>,
    client_secret_file: Option<Text>,
    token_file: Option<Text>,
    authority_host: Option<Text>,
    ca_file: Option<Text>,
    connect_timeout: Option<Text>,
    request_timeout: Option<Text>,
    operation_timeout: Option<Text>,
    max_attempts: Option<Text>,
    resolve: Option<BTreeMap<String, Text>>,
}

/// The fields each credential mode reads; the others are refused so that a setting
/// that would be ignored is not silently kept.
fn credential_fields(mode: &str) -> &'static [&'static str] {
    match mode {
        "workload_identity" => &["tenant_id", "client_id", "token_file"],
        "managed_identity" => &["client_id"],
        "client_secret" => &[
            "tenant_id",
            "client_id",
            "client_secret_env",
            "client_secret_file",
        ],
        _ => &[],
    }
}

/// Checks the settings as written, recording every problem in `section`.
pub(crate) fn check(raw: RawAzureConfig, section: &mut Section<'_, '_>) -> Option<AzureConfig> {
    let Some(url_text) = &raw.vault_url else {
        section.section_problem(
            "an `azure_key_vault` backend needs `vault_url`, e.g. https://<name>.vault.azure.net",
        );
        return None;
    };
    let vault_url = section.text(url_text, "vault_url")?;
    if !vault_url.starts_with("https://") {
        section.expected(
            url_text,
            "vault_url",
            "an https:// vault URL such as https://<name>.vault.azure.net",
        );
    }
    let credential = credential(&raw, section)?;
    let mut config = AzureConfig::new(vault_url, credential);
    if let Some(value) = &raw.authority_host
        && let Some(host) = section.text(value, "authority_host")
    {
        if host.starts_with("https://") {
            config.authority_host = Some(host);
        } else {
            section.expected(
                value,
                "authority_host",
                "an https:// Microsoft Entra endpoint such as https://login.microsoftonline.us",
            );
        }
    }
    if let Some(value) = &raw.ca_file {
        config.ca_file = section.file_path(value, "ca_file");
    }
    section.timeout(
        raw.connect_timeout.as_ref(),
        "connect_timeout",
        &mut config.connect_timeout,
    );
    section.timeout(
        raw.request_timeout.as_ref(),
        "request_timeout",
        &mut config.request_timeout,
    );
    section.timeout(
        raw.operation_timeout.as_ref(),
        "operation_timeout",
        &mut config.operation_timeout,
    );
    if let Some(value) = &raw.max_attempts
        && let Some(attempts) = section.attempts(value, "max_attempts")
    {
        config.max_attempts = attempts;
    }
    for (host, value) in raw.resolve.iter().flatten() {
        let field = format!("resolve.{host}");
        let Some(text) = section.text(value, &field) else {
            continue;
        };
        match text.parse::<SocketAddr>() {
            Ok(address) => config.resolve.push((host.clone(), address)),
            Err(_) => section.expected(
                value,
                &field,
                "an IP address and port such as `10.0.0.5:443`",
            ),
        }
    }
    Some(config)
}

fn credential(raw: &RawAzureConfig, section: &mut Section<'_, '_>) -> Option<CredentialConfig> {
    let tenant_id = section.optional_text(raw.tenant_id.as_ref(), "tenant_id");
    let client_id = section.optional_text(raw.client_id.as_ref(), "client_id");
    let secret_env = section.optional_text(raw.client_secret_env.as_ref(), "client_secret_env");
    let secret_file = match &raw.client_secret_file {
        Some(value) => section.file_path(value, "client_secret_file"),
        None => None,
    };
    let token_file = match &raw.token_file {
        Some(value) => section.file_path(value, "token_file"),
        None => None,
    };
    let mode = match &raw.credential {
        Some(value) => section.text(value, "credential")?,
        None => "auto".to_owned(),
    };
    for (name, value) in [
        ("tenant_id", &raw.tenant_id),
        ("client_id", &raw.client_id),
        ("client_secret_env", &raw.client_secret_env),
        ("client_secret_file", &raw.client_secret_file),
        ("token_file", &raw.token_file),
    ] {
        if let Some(value) = value
            && !credential_fields(&mode).contains(&name)
        {
            section.problem(
                value,
                name,
                format!("`{name}` does not apply to `credential: {mode}`"),
            );
        }
    }
    let refuse = |section: &mut Section<'_, '_>, message: &str| match &raw.credential {
        Some(at) => section.problem(at, "credential", message),
        None => section.section_problem(message),
    };
    Some(match mode.as_str() {
        "auto" => CredentialConfig::Auto,
        "azure_cli" => CredentialConfig::AzureCli,
        "managed_identity" => CredentialConfig::ManagedIdentity { client_id },
        "workload_identity" => CredentialConfig::WorkloadIdentity {
            tenant_id,
            client_id,
            token_file,
        },
        "client_secret" => {
            let secret = match (secret_env, secret_file) {
                (Some(name), None) => SecretSource::Env(name),
                (None, Some(file)) => SecretSource::File(file),
                _ => {
                    refuse(
                        section,
                        "`credential: client_secret` reads the secret from `client_secret_env` (a variable name) or `client_secret_file`, exactly one; it is never written in the config",
                    );
                    return None;
                }
            };
            let (Some(tenant_id), Some(client_id)) = (tenant_id, client_id) else {
                refuse(
                    section,
                    "`credential: client_secret` needs `tenant_id` and `client_id`",
                );
                return None;
            };
            CredentialConfig::ClientSecret {
                tenant_id,
                client_id,
                secret,
            }
        }
        other => {
            refuse(
                section,
                &format!(
                    "unknown credential `{other}`; expected auto, workload_identity, managed_identity, client_secret or azure_cli"
                ),
            );
            return None;
        }
    })
}
