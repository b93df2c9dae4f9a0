//! The daemon's configuration: YAML parsed into raw structs that reject unknown fields,
//! then validated into a checked [`Config`] that the rest of the daemon uses.
//!
//! Every error names the file, the line and column, and the field path, and says what
//! was expected. `${VAR}` and `${VAR:-default}` are expanded inside string values (never
//! in the YAML text itself, so a variable cannot change the document's structure), and
//! variables are read through [`Vars`] so tests can supply them.

use crate::names;
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vaultbridge_backend_core::{Capabilities, SecretRef, VersionSelector};
use vaultbridge_backend_env::EnvConfig;
use vaultbridge_backend_file::{FileConfig, FileFormat};

pub use crate::jira::config::{ConnectionConfig, Deployment, EmailSource, JiraConfig};

/// The built-in local-development configuration, used by `serve` without `--config`.
/// It is `config.example.yaml`, so the example and the default cannot drift apart.
pub const EMBEDDED_DEFAULT: &str = include_str!("../config.example.yaml");
pub const EMBEDDED_NAME: &str = "<embedded config.example.yaml>";

pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
pub const DEFAULT_MAX_ENTRIES: u64 = 10_000;
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
pub const DEFAULT_SOCKET_MODE: u32 = 0o600;

/// Where `${VAR}` values come from.
pub trait Vars {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessVars;

impl Vars for ProcessVars {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Vars for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from, for messages.
    pub source: String,
    pub server: ServerConfig,
    pub cache: CacheConfig,
    pub backends: BTreeMap<String, BackendConfig>,
    pub definitions: BTreeMap<String, DefinitionConfig>,
    pub jira: JiraConfig,
    /// Things fixed or worth a look, each to be logged once at start (never values).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    pub unix_socket: Option<PathBuf>,
    pub unix_socket_mode: u32,
    pub tcp: Option<SocketAddr>,
    /// How long in-flight calls may take to finish after SIGTERM/SIGINT.
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    pub ttl: Duration,
    pub max_entries: u64,
    /// Resolve every definition at start, before reporting SERVING.
    pub warm_up: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendConfig {
    Env(EnvConfig),
    File(FileConfig),
    #[cfg(feature = "aws")]
    Aws(vaultbridge_backend_aws::AwsConfig),
    #[cfg(feature = "azure")]
    Azure(vaultbridge_backend_azure::AzureConfig),
}

/// The `type` of an Azure Key Vault backend.
pub const AZURE_KIND: &str = "azure_key_vault";

/// The `type` of an AWS Secrets Manager backend (known even when built without it, so
/// the error can say so).
pub const AWS_KIND: &str = "aws_secrets_manager";

impl BackendConfig {
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Env(_) => vaultbridge_backend_env::KIND,
            Self::File(_) => vaultbridge_backend_file::KIND,
            #[cfg(feature = "aws")]
            Self::Aws(_) => vaultbridge_backend_aws::KIND,
            #[cfg(feature = "azure")]
            Self::Azure(_) => vaultbridge_backend_azure::KIND,
        }
    }

    fn capabilities(&self) -> Capabilities {
        match self {
            Self::Env(_) => vaultbridge_backend_env::CAPABILITIES,
            Self::File(_) => vaultbridge_backend_file::CAPABILITIES,
            #[cfg(feature = "aws")]
            Self::Aws(_) => vaultbridge_backend_aws::CAPABILITIES,
            #[cfg(feature = "azure")]
            Self::Azure(_) => vaultbridge_backend_azure::CAPABILITIES,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionConfig {
    pub backend: String,
    pub secret: SecretRef,
    /// `None`: the cache's TTL.
    pub ttl: Option<Duration>,
    pub trim: bool,
    pub description: String,
}

/// One thing wrong with a config, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: u64,
    pub column: u64,
    pub path: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file `{file}`: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render_problems(file, problems))]
    Invalid {
        file: String,
        problems: Vec<Problem>,
    },
}

fn render_problems(file: &str, problems: &[Problem]) -> String {
    let lines: Vec<String> = problems
        .iter()
        .map(|p| {
            let path = if p.path.is_empty() {
                "(top level)"
            } else {
                &p.path
            };
            format!("{file}:{}:{}: {path}: {}", p.line, p.column, p.message)
        })
        .collect();
    lines.join("\n")
}

impl ConfigError {
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Invalid { problems, .. } => problems,
            Self::Read { .. } => &[],
        }
    }
}

// ---- raw, as written -------------------------------------------------------------
// Every scalar is read as a spanned string so that interpolation applies to all of
// them and every validation error can point at the value.

/// A config value and where it was written. serde-saphyr's `Spanned` keeps two full
/// locations with byte spans, about 130 bytes a value: a 100,000-definition config
/// held 8 of them per definition at once, near 100 MB, just to name a line in an error.
#[derive(Debug, Deserialize)]
#[serde(from = "Spanned<String>")]
struct Text {
    value: String,
    line: u32,
    column: u32,
}

impl From<Spanned<String>> for Text {
    fn from(spanned: Spanned<String>) -> Self {
        let narrow = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        Self {
            line: narrow(spanned.referenced.line()),
            column: narrow(spanned.referenced.column()),
            value: spanned.value,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: Option<RawServer>,
    #[serde(default)]
    cache: Option<RawCache>,
    #[serde(default)]
    backends: BTreeMap<String, RawBackend>,
    #[serde(default)]
    definitions: BTreeMap<String, RawDefinition>,
    #[serde(default)]
    jira: Option<RawJira>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJira {
    expiry_warning: Option<Text>,
    failure_threshold: Option<Text>,
    #[serde(default)]
    connections: BTreeMap<String, RawJiraConnection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJiraConnection {
    url: Text,
    deployment: Option<Text>,
    email: Option<Text>,
    email_definition: Option<Text>,
    token: Text,
    expires_at: Option<Text>,
    project: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    unix_socket: Option<Text>,
    unix_socket_mode: Option<Text>,
    tcp: Option<Text>,
    shutdown_grace: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCache {
    ttl: Option<Text>,
    max_entries: Option<Text>,
    warm_up: Option<Text>,
}

/// One struct for every backend type, validated per type: serde's tagged enums lose
/// the positions that errors need.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackend {
    #[serde(rename = "type")]
    kind: Text,
    // env
    prefix: Option<Text>,
    // file
    path: Option<Text>,
    format: Option<Text>,
    change_check_interval: Option<Text>,
    // aws_secrets_manager
    region: Option<Text>,
    profile: Option<Text>,
    endpoint_url: Option<Text>,
    role_arn: Option<Text>,
    external_id: Option<Text>,
    session_name: Option<Text>,
    connect_timeout: Option<Text>,
    operation_timeout: Option<Text>,
    attempt_timeout: Option<Text>,
    max_attempts: Option<Text>,
    // azure_key_vault
    vault_url: Option<Text>,
    credential: Option<Text>,
    tenant_id: Option<Text>,
    client_id: Option<Text>,
    client_secret_env: Option<Text>,
    client_secret_file: Option<Text>,
    token_file: Option<Text>,
    authority_host: Option<Text>,
    ca_file: Option<Text>,
    request_timeout: Option<Text>,
    resolve: Option<BTreeMap<String, Text>>,
}

impl RawBackend {
    /// Every optional field with its name, to refuse those that do not belong to the
    /// backend's type.
    fn fields(&self) -> [(&'static str, Option<&Text>); 24] {
        [
            ("prefix", self.prefix.as_ref()),
            ("path", self.path.as_ref()),
            ("format", self.format.as_ref()),
            ("change_check_interval", self.change_check_interval.as_ref()),
            ("region", self.region.as_ref()),
            ("profile", self.profile.as_ref()),
            ("endpoint_url", self.endpoint_url.as_ref()),
            ("role_arn", self.role_arn.as_ref()),
            ("external_id", self.external_id.as_ref()),
            ("session_name", self.session_name.as_ref()),
            ("connect_timeout", self.connect_timeout.as_ref()),
            ("operation_timeout", self.operation_timeout.as_ref()),
            ("attempt_timeout", self.attempt_timeout.as_ref()),
            ("max_attempts", self.max_attempts.as_ref()),
            ("vault_url", self.vault_url.as_ref()),
            ("credential", self.credential.as_ref()),
            ("tenant_id", self.tenant_id.as_ref()),
            ("client_id", self.client_id.as_ref()),
            ("client_secret_env", self.client_secret_env.as_ref()),
            ("client_secret_file", self.client_secret_file.as_ref()),
            ("token_file", self.token_file.as_ref()),
            ("authority_host", self.authority_host.as_ref()),
            ("ca_file", self.ca_file.as_ref()),
            ("request_timeout", self.request_timeout.as_ref()),
        ]
    }
}

const AZURE_FIELDS: &[&str] = &[
    "vault_url",
    "credential",
    "tenant_id",
    "client_id",
    "client_secret_env",
    "client_secret_file",
    "token_file",
    "authority_host",
    "ca_file",
    "connect_timeout",
    "request_timeout",
    "operation_timeout",
    "max_attempts",
    "resolve",
];

const AWS_FIELDS: &[&str] = &[
    "region",
    "profile",
    "endpoint_url",
    "role_arn",
    "external_id",
    "session_name",
    "connect_timeout",
    "operation_timeout",
    "attempt_timeout",
    "max_attempts",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefinition {
    backend: Text,
    secret: Text,
    key: Option<Text>,
    version_id: Option<Text>,
    version_stage: Option<Text>,
    ttl: Option<Text>,
    trim: Option<Text>,
    description: Option<Text>,
}

// ---- loading ---------------------------------------------------------------------

impl Config {
    /// Reads and validates a config file. Relative paths inside it are relative to the
    /// file's directory.
    pub fn load(path: &Path, vars: &dyn Vars) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::parse(&text, &file, &base, vars)
    }

    /// The embedded local-development default; relative paths are relative to the
    /// working directory.
    pub fn embedded_default(vars: &dyn Vars) -> Result<Self, ConfigError> {
        Self::parse(EMBEDDED_DEFAULT, EMBEDDED_NAME, Path::new(""), vars)
    }

    pub fn parse(
        text: &str,
        file: &str,
        base: &Path,
        vars: &dyn Vars,
    ) -> Result<Self, ConfigError> {
        let raw = parse_raw(text).map_err(|problem| ConfigError::Invalid {
            file: file.to_owned(),
            problems: vec![problem],
        })?;
        let mut checker = Checker {
            vars,
            base,
            problems: Vec::new(),
            warnings: Vec::new(),
        };
        let config = checker.config(raw, file);
        if checker.problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                file: file.to_owned(),
                problems: checker.problems,
            })
        }
    }

    /// The TTL that applies to a definition.
    pub fn ttl_of(&self, definition: &DefinitionConfig) -> Duration {
        definition.ttl.unwrap_or(self.cache.ttl)
    }
}

fn parse_raw(text: &str) -> Result<RawConfig, Problem> {
    let mut options = serde_saphyr::Options::default();
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    options.budget = Some(large_document_budget());
    let mut path = String::new();
    let parsed = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize::<_, Option<RawConfig>>(de).map_err(|err| {
            path = err.path().to_string();
            err.into_inner()
        })
    });
    parsed.map(Option::unwrap_or_default).map_err(|err| {
        let (line, column) = err
            .location()
            .map(|at| (at.line(), at.column()))
            .unwrap_or((1, 1));
        let message = err.without_snippet().to_string();
        let message = strip_location_suffix(&message);
        // Spanned values deserialize through an inner `value` field; users never see it.
        let path = path.strip_suffix(".value").unwrap_or(&path);
        let path = if path == "." || path == "?" { "" } else { path };
        Problem {
            line,
            column,
            path: path.to_owned(),
            message: explain_parse_message(message),
        }
    })
}

/// serde-saphyr's guard against YAML bombs, with room for very large configs: its
/// default stops at 250,000 nodes, about 80,000 definitions.
pub(crate) fn large_document_budget() -> serde_saphyr::Budget {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = 10_000_000;
    budget.max_events = 20_000_000;
    budget
}

/// serde-saphyr appends " at line L, column C"; the location is printed separately.
fn strip_location_suffix(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(at) => &message[..at],
        None => message,
    }
}

fn explain_parse_message(message: &str) -> String {
    if message.contains("expected string scalar") {
        "expected a single value (text, number or duration), not a list or map".to_owned()
    } else {
        message.to_owned()
    }
}

struct Checker<'a> {
    vars: &'a dyn Vars,
    base: &'a Path,
    problems: Vec<Problem>,
    warnings: Vec<String>,
}

impl Checker<'_> {
    fn problem(&mut self, at: &Text, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            line: u64::from(at.line),
            column: u64::from(at.column),
            path: path.into(),
            message: message.into(),
        });
    }

    /// The value with `${VAR}` expanded, or `None` after recording why not.
    fn text(&mut self, value: &Text, path: &str) -> Option<String> {
        match interpolate(&value.value, self.vars) {
            Ok(text) => Some(text),
            Err(message) => {
                self.problem(value, path, message);
                None
            }
        }
    }

    fn optional_text(&mut self, value: Option<&Text>, path: &str) -> Option<String> {
        value.and_then(|value| self.text(value, path))
    }

    fn duration(&mut self, value: &Text, path: &str) -> Option<Duration> {
        let text = self.text(value, path)?;
        match humantime::parse_duration(text.trim()) {
            Ok(duration) => Some(duration),
            Err(_) => {
                self.problem(
                    value,
                    path,
                    format!("expected a duration such as `30s`, `5m` or `1h30m`, got `{text}`"),
                );
                None
            }
        }
    }

    /// Attempts per call, retries included: 1 to 10.
    #[cfg(any(feature = "aws", feature = "azure"))]
    fn attempts(&mut self, value: &Text, path: &str) -> Option<u32> {
        let text = self.text(value, path)?;
        match text.trim().parse::<u32>() {
            Ok(attempts @ 1..=10) => Some(attempts),
            _ => {
                self.problem(
                    value,
                    path,
                    format!("expected a number of attempts from 1 to 10, got `{text}`"),
                );
                None
            }
        }
    }

    /// Sets `target` from a duration that must be longer than zero.
    #[cfg(any(feature = "aws", feature = "azure"))]
    fn timeout(&mut self, value: Option<&Text>, path: &str, target: &mut Duration) {
        if let Some(value) = value
            && let Some(duration) = self.duration(value, path)
        {
            if duration.is_zero() {
                self.problem(value, path, "a timeout must be longer than zero");
            } else {
                *target = duration;
            }
        }
    }

    fn boolean(&mut self, value: &Text, path: &str) -> Option<bool> {
        match self.text(value, path)?.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            other => {
                self.problem(
                    value,
                    path,
                    format!("expected `true` or `false`, got `{other}`"),
                );
                None
            }
        }
    }

    fn path_value(&mut self, value: &Text, path: &str) -> Option<PathBuf> {
        let text = self.text(value, path)?;
        if text.is_empty() {
            self.problem(value, path, "expected a file path, got an empty value");
            return None;
        }
        let candidate = PathBuf::from(text);
        Some(
            if candidate.is_relative() && !self.base.as_os_str().is_empty() {
                self.base.join(candidate)
            } else {
                candidate
            },
        )
    }

    fn config(&mut self, raw: RawConfig, file: &str) -> Config {
        let server = self.server(raw.server);
        let cache = self.cache(raw.cache);
        let mut backends = BTreeMap::new();
        for (name, backend) in &raw.backends {
            if let Some(checked) = self.backend(name, backend) {
                backends.insert(name.clone(), checked);
            }
        }
        let mut definitions = BTreeMap::new();
        for (name, definition) in &raw.definitions {
            if let Some(checked) = self.definition(name, definition, &raw.backends, &backends) {
                definitions.insert(name.clone(), checked);
            }
        }
        let jira = match &raw.jira {
            Some(jira) => self.jira(jira, &raw.definitions),
            None => JiraConfig::default(),
        };
        Config {
            source: file.to_owned(),
            server,
            cache,
            backends,
            definitions,
            jira,
            warnings: std::mem::take(&mut self.warnings),
        }
    }

    fn server(&mut self, raw: Option<RawServer>) -> ServerConfig {
        let mut server = ServerConfig {
            unix_socket: None,
            unix_socket_mode: DEFAULT_SOCKET_MODE,
            tcp: None,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        };
        let Some(raw) = raw else {
            self.problems.push(Problem {
                line: 1,
                column: 1,
                path: "server".into(),
                message: "no listener: add a `server` section with `unix_socket`, `tcp` or both"
                    .into(),
            });
            return server;
        };
        if let Some(value) = &raw.unix_socket {
            server.unix_socket = self.path_value(value, "server.unix_socket");
        }
        if let Some(value) = &raw.unix_socket_mode
            && let Some(text) = self.text(value, "server.unix_socket_mode")
        {
            match u32::from_str_radix(text.trim_start_matches("0o"), 8) {
                Ok(mode) if mode <= 0o777 => server.unix_socket_mode = mode,
                _ => self.problem(
                    value,
                    "server.unix_socket_mode",
                    format!(
                        "expected octal permission bits such as `0600` or `0660`, got `{text}`"
                    ),
                ),
            }
        }
        if let Some(value) = &raw.tcp
            && let Some(text) = self.text(value, "server.tcp")
        {
            match text.parse::<SocketAddr>() {
                Ok(addr) => server.tcp = Some(addr),
                Err(_) => self.problem(
                    value,
                    "server.tcp",
                    format!(
                        "expected an IP address and port such as `127.0.0.1:50051` or `[::1]:50051`, got `{text}`"
                    ),
                ),
            }
        }
        if let Some(value) = &raw.shutdown_grace
            && let Some(grace) = self.duration(value, "server.shutdown_grace")
        {
            server.shutdown_grace = grace;
        }
        if raw.unix_socket.is_none() && raw.tcp.is_none() {
            self.problems.push(Problem {
                line: 1,
                column: 1,
                path: "server".into(),
                message: "no listener: set `unix_socket`, `tcp` or both".into(),
            });
        }
        server
    }

    fn cache(&mut self, raw: Option<RawCache>) -> CacheConfig {
        let mut cache = CacheConfig {
            ttl: DEFAULT_TTL,
            max_entries: DEFAULT_MAX_ENTRIES,
            warm_up: false,
        };
        let Some(raw) = raw else { return cache };
        if let Some(value) = &raw.ttl
            && let Some(ttl) = self.duration(value, "cache.ttl")
        {
            cache.ttl = ttl;
        }
        if let Some(value) = &raw.max_entries
            && let Some(text) = self.text(value, "cache.max_entries")
        {
            match text.trim().replace('_', "").parse::<u64>() {
                Ok(max) if max > 0 => cache.max_entries = max,
                _ => self.problem(
                    value,
                    "cache.max_entries",
                    format!("expected a whole number of entries, at least 1, got `{text}`"),
                ),
            }
        }
        if let Some(value) = &raw.warm_up
            && let Some(warm_up) = self.boolean(value, "cache.warm_up")
        {
            cache.warm_up = warm_up;
        }
        cache
    }

    fn backend(&mut self, name: &str, raw: &RawBackend) -> Option<BackendConfig> {
        let path = format!("backends.{name}");
        if !valid_backend_name(name) {
            self.problem(
                &raw.kind,
                &path,
                "a backend name may contain only ASCII letters, digits, '-' and '_'",
            );
        }
        let kind = self.text(&raw.kind, &format!("{path}.type"))?;
        let allowed: &[&str] = match kind.as_str() {
            vaultbridge_backend_env::KIND => &["prefix"],
            vaultbridge_backend_file::KIND => &["path", "format", "change_check_interval"],
            AWS_KIND => AWS_FIELDS,
            AZURE_KIND => AZURE_FIELDS,
            other => {
                self.problem(
                    &raw.kind,
                    format!("{path}.type"),
                    format!(
                        "unknown backend type `{other}`; expected one of: env, file, {AWS_KIND}, {AZURE_KIND}"
                    ),
                );
                return None;
            }
        };
        if let Some(resolve) = &raw.resolve
            && !allowed.contains(&"resolve")
        {
            let at = resolve.values().next().unwrap_or(&raw.kind);
            self.problem(
                at,
                format!("{path}.resolve"),
                format!("`resolve` does not apply to `{kind}` backends"),
            );
        }
        for (field, value) in raw.fields() {
            if let Some(value) = value
                && !allowed.contains(&field)
            {
                self.problem(
                    value,
                    format!("{path}.{field}"),
                    format!(
                        "`{field}` does not apply to `{kind}` backends; their fields are: type, {}",
                        allowed.join(", ")
                    ),
                );
            }
        }
        match kind.as_str() {
            vaultbridge_backend_env::KIND => {
                let prefix = self
                    .optional_text(raw.prefix.as_ref(), &format!("{path}.prefix"))
                    .unwrap_or_default();
                Some(BackendConfig::Env(EnvConfig { prefix }))
            }
            vaultbridge_backend_file::KIND => self.file_backend(&path, raw),
            AZURE_KIND => self.azure_backend(&path, raw),
            _ => self.aws_backend(&path, raw),
        }
    }

    fn file_backend(&mut self, path: &str, raw: &RawBackend) -> Option<BackendConfig> {
        let Some(path_text) = &raw.path else {
            self.problem(
                &raw.kind,
                path,
                "a `file` backend needs `path`: the secrets file to read",
            );
            return None;
        };
        let file = self.path_value(path_text, &format!("{path}.path"))?;
        let format = match &raw.format {
            Some(value) => {
                let text = self.text(value, &format!("{path}.format"))?;
                match text.as_str() {
                    "yaml" => FileFormat::Yaml,
                    "json" => FileFormat::Json,
                    "dotenv" => FileFormat::Dotenv,
                    other => {
                        self.problem(
                            value,
                            format!("{path}.format"),
                            format!("unknown format `{other}`; expected yaml, json or dotenv"),
                        );
                        return None;
                    }
                }
            }
            None => match FileFormat::from_path(&file) {
                Some(format) => format,
                None => {
                    self.problem(
                        path_text,
                        format!("{path}.path"),
                        "cannot tell the file's format from its name (.yaml, .yml, .json, .env); set `format: yaml`, `json` or `dotenv`",
                    );
                    return None;
                }
            },
        };
        let change_check_interval = match &raw.change_check_interval {
            Some(value) => self.duration(value, &format!("{path}.change_check_interval"))?,
            None => FileConfig::DEFAULT_CHANGE_CHECK_INTERVAL,
        };
        Some(BackendConfig::File(FileConfig {
            path: file,
            format,
            change_check_interval,
        }))
    }

    #[cfg(not(feature = "aws"))]
    fn aws_backend(&mut self, path: &str, raw: &RawBackend) -> Option<BackendConfig> {
        self.problem(
            &raw.kind,
            format!("{path}.type"),
            "this vaultbridge was built without AWS Secrets Manager support (cargo feature `aws`)",
        );
        None
    }

    #[cfg(feature = "aws")]
    fn aws_backend(&mut self, path: &str, raw: &RawBackend) -> Option<BackendConfig> {
        use vaultbridge_backend_aws::{AssumeRole, AwsConfig};
        let mut config = AwsConfig::default();
        let field = |name: &str| format!("{path}.{name}");
        config.region = self.optional_text(raw.region.as_ref(), &field("region"));
        config.profile = self.optional_text(raw.profile.as_ref(), &field("profile"));
        if let Some(value) = &raw.endpoint_url
            && let Some(url) = self.text(value, &field("endpoint_url"))
        {
            if url.starts_with("https://") || url.starts_with("http://") {
                config.endpoint_url = Some(url);
            } else {
                self.problem(
                    value,
                    field("endpoint_url"),
                    format!("expected a URL starting with https:// (or http:// for a local emulator), got `{url}`"),
                );
            }
        }
        let role_arn = self.optional_text(raw.role_arn.as_ref(), &field("role_arn"));
        if let (Some(arn), Some(value)) = (&role_arn, &raw.role_arn)
            && !arn.starts_with("arn:")
        {
            self.problem(
                value,
                field("role_arn"),
                format!("expected a role ARN such as `arn:aws:iam::123456789012:role/reader`, got `{arn}`"),
            );
        }
        let external_id = self.optional_text(raw.external_id.as_ref(), &field("external_id"));
        let session_name = self.optional_text(raw.session_name.as_ref(), &field("session_name"));
        match role_arn {
            Some(role_arn) => {
                config.assume_role = Some(AssumeRole {
                    role_arn,
                    external_id,
                    session_name,
                });
            }
            None => {
                for (name, value) in [
                    ("external_id", &raw.external_id),
                    ("session_name", &raw.session_name),
                ] {
                    if let Some(value) = value {
                        self.problem(
                            value,
                            field(name),
                            format!("`{name}` only applies with `role_arn`"),
                        );
                    }
                }
            }
        }
        for (name, value, target) in [
            (
                "connect_timeout",
                &raw.connect_timeout,
                &mut config.connect_timeout,
            ),
            (
                "operation_timeout",
                &raw.operation_timeout,
                &mut config.operation_timeout,
            ),
            (
                "attempt_timeout",
                &raw.attempt_timeout,
                &mut config.attempt_timeout,
            ),
        ] {
            self.timeout(value.as_ref(), &field(name), target);
        }
        if let Some(value) = &raw.max_attempts
            && let Some(attempts) = self.attempts(value, &field("max_attempts"))
        {
            config.max_attempts = attempts;
        }
        Some(BackendConfig::Aws(config))
    }

    #[cfg(not(feature = "azure"))]
    fn azure_backend(&mut self, path: &str, raw: &RawBackend) -> Option<BackendConfig> {
        self.problem(
            &raw.kind,
            format!("{path}.type"),
            "this vaultbridge was built without Azure Key Vault support (cargo feature `azure`)",
        );
        None
    }

    #[cfg(feature = "azure")]
    fn azure_backend(&mut self, path: &str, raw: &RawBackend) -> Option<BackendConfig> {
        use vaultbridge_backend_azure::{AzureConfig, CredentialConfig, SecretSource};
        let field = |name: &str| format!("{path}.{name}");
        let Some(url_text) = &raw.vault_url else {
            self.problem(
                &raw.kind,
                path,
                "an `azure_key_vault` backend needs `vault_url`, e.g. https://<name>.vault.azure.net",
            );
            return None;
        };
        let vault_url = self.text(url_text, &field("vault_url"))?;
        if !vault_url.starts_with("https://") {
            self.problem(
                url_text,
                field("vault_url"),
                format!("expected an https:// vault URL such as https://<name>.vault.azure.net, got `{vault_url}`"),
            );
        }
        let tenant_id = self.optional_text(raw.tenant_id.as_ref(), &field("tenant_id"));
        let client_id = self.optional_text(raw.client_id.as_ref(), &field("client_id"));
        let secret_env =
            self.optional_text(raw.client_secret_env.as_ref(), &field("client_secret_env"));
        let secret_file = match &raw.client_secret_file {
            Some(value) => self.path_value(value, &field("client_secret_file")),
            None => None,
        };
        let token_file = match &raw.token_file {
            Some(value) => self.path_value(value, &field("token_file")),
            None => None,
        };
        let mode = match &raw.credential {
            Some(value) => self.text(value, &field("credential"))?,
            None => "auto".to_owned(),
        };
        let fields_of = |mode: &str| -> &'static [&'static str] {
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
        };
        let credential_fields = [
            ("tenant_id", &raw.tenant_id),
            ("client_id", &raw.client_id),
            ("client_secret_env", &raw.client_secret_env),
            ("client_secret_file", &raw.client_secret_file),
            ("token_file", &raw.token_file),
        ];
        for (name, value) in credential_fields {
            if let Some(value) = value
                && !fields_of(&mode).contains(&name)
            {
                self.problem(
                    value,
                    field(name),
                    format!("`{name}` does not apply to `credential: {mode}`"),
                );
            }
        }
        let credential = match mode.as_str() {
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
                        self.problem(
                            raw.credential.as_ref().unwrap_or(&raw.kind),
                            field("credential"),
                            "`credential: client_secret` reads the secret from `client_secret_env` (a variable name) or `client_secret_file`, exactly one; it is never written in the config",
                        );
                        return None;
                    }
                };
                let (Some(tenant_id), Some(client_id)) = (tenant_id, client_id) else {
                    self.problem(
                        raw.credential.as_ref().unwrap_or(&raw.kind),
                        field("credential"),
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
                let at = raw.credential.as_ref().unwrap_or(&raw.kind);
                self.problem(
                    at,
                    field("credential"),
                    format!("unknown credential `{other}`; expected auto, workload_identity, managed_identity, client_secret or azure_cli"),
                );
                return None;
            }
        };
        let mut config = AzureConfig::new(vault_url, credential);
        if let Some(value) = &raw.authority_host
            && let Some(host) = self.text(value, &field("authority_host"))
        {
            if host.starts_with("https://") {
                config.authority_host = Some(host);
            } else {
                self.problem(
                    value,
                    field("authority_host"),
                    format!("expected an https:// Microsoft Entra endpoint such as https://login.microsoftonline.us, got `{host}`"),
                );
            }
        }
        if let Some(value) = &raw.ca_file {
            config.ca_file = self.path_value(value, &field("ca_file"));
        }
        for (name, value, target) in [
            (
                "connect_timeout",
                &raw.connect_timeout,
                &mut config.connect_timeout,
            ),
            (
                "request_timeout",
                &raw.request_timeout,
                &mut config.request_timeout,
            ),
            (
                "operation_timeout",
                &raw.operation_timeout,
                &mut config.operation_timeout,
            ),
        ] {
            self.timeout(value.as_ref(), &field(name), target);
        }
        if let Some(value) = &raw.max_attempts
            && let Some(attempts) = self.attempts(value, &field("max_attempts"))
        {
            config.max_attempts = attempts;
        }
        for (host, value) in raw.resolve.iter().flatten() {
            let Some(text) = self.text(value, &field("resolve")) else {
                continue;
            };
            match text.parse::<SocketAddr>() {
                Ok(address) => config.resolve.push((host.clone(), address)),
                Err(_) => self.problem(
                    value,
                    format!("{path}.resolve.{host}"),
                    format!("expected an IP address and port such as `10.0.0.5:443`, got `{text}`"),
                ),
            }
        }
        Some(BackendConfig::Azure(config))
    }

    fn definition(
        &mut self,
        name: &str,
        raw: &RawDefinition,
        raw_backends: &BTreeMap<String, RawBackend>,
        backends: &BTreeMap<String, BackendConfig>,
    ) -> Option<DefinitionConfig> {
        let path = format!("definitions.{name}");
        if let Err(err) = names::validate(name) {
            self.problem(&raw.backend, &path, err.to_string());
        }
        let backend_name = self.text(&raw.backend, &format!("{path}.backend"))?;
        if !raw_backends.contains_key(&backend_name) {
            let known: Vec<&str> = raw_backends.keys().map(String::as_str).collect();
            self.problem(
                &raw.backend,
                format!("{path}.backend"),
                format!(
                    "no backend named `{backend_name}`; configured backends: {}",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        }
        let backend = backends.get(&backend_name);
        let secret_path = format!("{path}.secret");
        let id = self.text(&raw.secret, &secret_path)?;
        if id.is_empty() {
            self.problem(
                &raw.secret,
                &secret_path,
                "expected the secret's name or id, got an empty value",
            );
        }
        if let Some(BackendConfig::Env(_)) = backend
            && let Err(message) = vaultbridge_backend_env::validate_variable_name(&id)
        {
            self.problem(&raw.secret, &secret_path, message);
        }
        #[cfg(feature = "azure")]
        if let Some(BackendConfig::Azure(_)) = backend
            && let Err(message) = vaultbridge_backend_azure::validate_secret_name(&id)
        {
            self.problem(&raw.secret, &secret_path, message);
        }
        let key = self.optional_text(raw.key.as_ref(), &format!("{path}.key"));
        if let (Some(""), Some(value)) = (key.as_deref(), &raw.key) {
            self.problem(
                value,
                format!("{path}.key"),
                "expected a key name, got an empty value",
            );
        }
        let version = self.version(&path, raw, backend)?;
        let ttl = match &raw.ttl {
            Some(value) => Some(self.duration(value, &format!("{path}.ttl"))?),
            None => None,
        };
        let trim = match &raw.trim {
            Some(value) => self.boolean(value, &format!("{path}.trim"))?,
            None => true,
        };
        let description = self
            .optional_text(raw.description.as_ref(), &format!("{path}.description"))
            .unwrap_or_default();
        Some(DefinitionConfig {
            backend: backend_name,
            secret: SecretRef { id, key, version },
            ttl,
            trim,
            description,
        })
    }

    fn version(
        &mut self,
        path: &str,
        raw: &RawDefinition,
        backend: Option<&BackendConfig>,
    ) -> Option<VersionSelector> {
        let id = self.optional_text(raw.version_id.as_ref(), &format!("{path}.version_id"));
        let stage =
            self.optional_text(raw.version_stage.as_ref(), &format!("{path}.version_stage"));
        let capabilities = backend.map(BackendConfig::capabilities).unwrap_or_default();
        let type_name = backend.map(BackendConfig::type_name).unwrap_or("unknown");
        match (id, stage, &raw.version_id, &raw.version_stage) {
            (Some(_), Some(_), _, Some(at)) => {
                self.problem(
                    at,
                    format!("{path}.version_stage"),
                    "set `version_id` or `version_stage`, not both",
                );
                None
            }
            (Some(id), None, Some(at), _) => {
                if backend.is_some() && !capabilities.version_ids {
                    self.problem(
                        at,
                        format!("{path}.version_id"),
                        format!("`{type_name}` backends have no versions to pin"),
                    );
                }
                Some(VersionSelector::Id(id))
            }
            (None, Some(stage), _, Some(at)) => {
                if backend.is_some() && !capabilities.version_stages {
                    self.problem(
                        at,
                        format!("{path}.version_stage"),
                        format!("`{type_name}` backends have no version stages"),
                    );
                }
                Some(VersionSelector::Stage(stage))
            }
            _ => Some(VersionSelector::Latest),
        }
    }
}

impl Checker<'_> {
    fn jira(&mut self, raw: &RawJira, definitions: &BTreeMap<String, RawDefinition>) -> JiraConfig {
        use crate::jira::config::{
            default_deployment, looks_like_email, normalise_site_url, parse_date,
        };
        let mut jira = JiraConfig::default();
        if let Some(value) = &raw.expiry_warning
            && let Some(warning) = self.duration(value, "jira.expiry_warning")
        {
            jira.expiry_warning = warning;
        }
        if let Some(value) = &raw.failure_threshold
            && let Some(text) = self.text(value, "jira.failure_threshold")
        {
            match text.trim().parse::<u32>() {
                Ok(threshold @ 1..=100) => jira.failure_threshold = threshold,
                _ => self.problem(
                    value,
                    "jira.failure_threshold",
                    format!("expected a number of failures from 1 to 100, got `{text}`"),
                ),
            }
        }
        for (name, connection) in &raw.connections {
            let path = format!("jira.connections.{name}");
            if let Err(err) = names::validate(name) {
                self.problem(
                    &connection.url,
                    &path,
                    err.to_string().replace("definition", "connection"),
                );
            }
            let Some(url_text) = self.text(&connection.url, &format!("{path}.url")) else {
                continue;
            };
            let site = match normalise_site_url(&url_text) {
                Ok(site) => site,
                Err(message) => {
                    self.problem(&connection.url, format!("{path}.url"), message);
                    continue;
                }
            };
            for fix in &site.fixes {
                self.warnings.push(format!(
                    "Jira connection `{name}`: {fix}; now `{}`",
                    site.url
                ));
            }
            let deployment = match &connection.deployment {
                Some(value) => {
                    let Some(text) = self.text(value, &format!("{path}.deployment")) else {
                        continue;
                    };
                    match Deployment::parse(&text) {
                        Some(deployment) => deployment,
                        None => {
                            self.problem(
                                value,
                                format!("{path}.deployment"),
                                format!("unknown deployment `{text}`; expected cloud, cloud_scoped or data_center"),
                            );
                            continue;
                        }
                    }
                }
                None => default_deployment(&site.host),
            };
            let email = match (&connection.email, &connection.email_definition) {
                (Some(_), Some(value)) => {
                    self.problem(
                        value,
                        format!("{path}.email_definition"),
                        "set `email` or `email_definition`, not both",
                    );
                    None
                }
                (Some(value), None) => self
                    .text(value, &format!("{path}.email"))
                    .map(EmailSource::Literal),
                (None, Some(value)) => {
                    let definition = self.text(value, &format!("{path}.email_definition"));
                    if let Some(definition) = &definition
                        && !definitions.contains_key(definition)
                    {
                        self.problem(
                            value,
                            format!("{path}.email_definition"),
                            format!("no definition named `{definition}`"),
                        );
                    }
                    definition.map(EmailSource::Definition)
                }
                (None, None) => None,
            };
            match (&email, deployment.uses_email()) {
                (None, true) => self.problem(
                    &connection.url,
                    &path,
                    format!("a `{}` connection needs the account's email address: set `email` (or `email_definition`)", deployment.name()),
                ),
                (Some(_), false) => {
                    let at = connection.email.as_ref().or(connection.email_definition.as_ref()).unwrap_or(&connection.url);
                    self.problem(
                        at,
                        format!("{path}.email"),
                        "a `data_center` connection authenticates with a personal access token alone; remove the email",
                    );
                }
                (Some(EmailSource::Literal(address)), true) if !looks_like_email(address) => {
                    self.warnings.push(format!(
                        "Jira connection `{name}`: the email does not look like an email address; Jira Cloud wants the account's email, not its display name"
                    ));
                }
                _ => {}
            }
            let Some(token_definition) = self.text(&connection.token, &format!("{path}.token"))
            else {
                continue;
            };
            if !definitions.contains_key(&token_definition) {
                let known: Vec<&str> = definitions.keys().map(String::as_str).collect();
                self.problem(
                    &connection.token,
                    format!("{path}.token"),
                    format!(
                        "`token` names a secret definition, and there is none named `{token_definition}`; definitions: {}",
                        if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                    ),
                );
            }
            let expires_at = match &connection.expires_at {
                Some(value) => {
                    let text = self.text(value, &format!("{path}.expires_at"));
                    match text.as_deref().map(parse_date) {
                        Some(Some(date)) => Some(date),
                        Some(None) => {
                            self.problem(
                                value,
                                format!("{path}.expires_at"),
                                "expected a date as YYYY-MM-DD, e.g. 2027-01-15",
                            );
                            None
                        }
                        None => None,
                    }
                }
                None => None,
            };
            let project =
                self.optional_text(connection.project.as_ref(), &format!("{path}.project"));
            jira.connections.insert(
                name.clone(),
                ConnectionConfig {
                    site_url: site.url,
                    deployment,
                    email,
                    token_definition,
                    expires_at,
                    project,
                },
            );
        }
        jira
    }
}

fn valid_backend_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Expands `${NAME}` and `${NAME:-default}` (the default applies when the variable is
/// unset or empty, as in the shell). `$$` is a literal `$`; any other `$` is literal.
pub fn interpolate(input: &str, vars: &dyn Vars) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                return Err("`${` is not closed by `}`; write `$$` for a literal `$`".to_owned());
            };
            let expression = &body[..end];
            let (name, default) = match expression.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (expression, None),
            };
            if !valid_var_name(name) {
                return Err(format!(
                    "`${{{expression}}}` is not a variable reference: names are letters, digits and `_`, not starting with a digit"
                ));
            }
            match (vars.var(name), default) {
                (Some(value), Some(default)) if value.is_empty() => out.push_str(default),
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => {
                    return Err(format!(
                        "environment variable `{name}` is not set; set it, or write `${{{name}:-default}}`"
                    ));
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn valid_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl fmt::Display for BackendConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.type_name())
    }
}

#[cfg(test)]
mod tests;
