//! The daemon's configuration: YAML read into raw sections that reject unknown fields
//! ([`load`]), then checked into a [`Config`] that the rest of the daemon uses. Each
//! section's rules sit next to its types ([`server`], [`cache`], [`definitions`], the
//! Jira section in `crate::jira::config`); each backend's rules sit in its own crate,
//! reached through the one [registry](crate::registry).
//!
//! Every error names the file, the line and column, and the field path, and says what
//! was expected. `${VAR}` and `${VAR:-default}` are expanded inside string values (never
//! in the YAML text itself, so a variable cannot change the document's structure), and
//! variables are read through [`Vars`] so tests can supply them.

mod cache;
mod clients;
mod definitions;
mod http;
mod load;
mod metrics;
mod server;
mod tls;

#[cfg(test)]
pub(crate) use cache::RefreshAhead;
pub(crate) use cache::{CacheConfig, CachePolicy};
pub(crate) use clients::{
    AuditConfig, AuditSink, ClientConfig, ClientsConfig, RateLimit, TokenSource,
};
pub(crate) use definitions::{DefinitionConfig, FallbackOn};
pub(crate) use http::HttpConfig;
pub(crate) use server::{KEEPALIVE_TIMEOUT, Limits as ServerLimits, ServerConfig};
pub(crate) use tls::TlsConfig;
pub(crate) use vaultbridge_backend_core::config::{ProcessVars, Vars};

use crate::jira::config::JiraConfig;
use crate::registry::{self, BackendConfig};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use vaultbridge_backend_core::config::{Checker, Location, Problem};

/// The built-in local-development configuration, used by `serve` without `--config`.
/// It is `config.example.yaml`, so the example and the default cannot drift apart.
pub(crate) const EMBEDDED_DEFAULT: &str = include_str!("../../config.example.yaml");
pub(crate) const EMBEDDED_NAME: &str = "<embedded config.example.yaml>";

#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The file this came from, for messages.
    pub source: String,
    pub server: ServerConfig,
    pub cache: CacheConfig,
    pub backends: BTreeMap<String, BackendConfig>,
    pub definitions: BTreeMap<String, DefinitionConfig>,
    pub jira: JiraConfig,
    /// Who may call, and the audit trail.
    pub access: ClientsConfig,
    /// Things fixed or worth a look, each to be logged once at start (never values).
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
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
            format!(
                "{file}:{}:{}: {path}: {}",
                p.at.line, p.at.column, p.message
            )
        })
        .collect();
    lines.join("\n")
}

impl Config {
    /// Reads and checks a config file. Relative paths inside it are relative to the
    /// file's directory.
    pub(crate) fn load(path: &Path, vars: &dyn Vars) -> Result<Self, ConfigError> {
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
    pub(crate) fn embedded_default(vars: &dyn Vars) -> Result<Self, ConfigError> {
        Self::parse(EMBEDDED_DEFAULT, EMBEDDED_NAME, Path::new(""), vars)
    }

    pub(crate) fn parse(
        text: &str,
        file: &str,
        base: &Path,
        vars: &dyn Vars,
    ) -> Result<Self, ConfigError> {
        let invalid = |problems| ConfigError::Invalid {
            file: file.to_owned(),
            problems,
        };
        let raw = load::parse_raw(text).map_err(|problem| invalid(vec![problem]))?;
        let mut checker = Checker::new(vars, base);
        let server = server::check(raw.server.as_ref(), &mut checker);
        let cache = cache::check(raw.cache.as_ref(), &mut checker);
        let mut backends = BTreeMap::new();
        for (name, node) in &raw.backends {
            let mut section = checker.section(format!("backends.{name}"), node.at);
            if let Some(backend) = registry::check(name, node, &mut section) {
                backends.insert(name.clone(), backend);
            }
        }
        let backend_names: Vec<&str> = raw.backends.keys().map(String::as_str).collect();
        let mut definitions = BTreeMap::new();
        for (name, definition) in &raw.definitions {
            let mut section = checker.section(format!("definitions.{name}"), definition.at());
            if let Some(checked) =
                definitions::check(name, definition, &backend_names, &backends, &mut section)
            {
                definitions.insert(name.clone(), checked);
            }
        }
        let jira = match &raw.jira {
            Some(jira) => {
                let names: Vec<&str> = raw.definitions.keys().map(String::as_str).collect();
                crate::jira::config::check(jira, &names, &mut checker)
            }
            None => JiraConfig::default(),
        };
        let mut access = clients::check(raw.clients.as_ref(), raw.audit.as_ref(), &mut checker);
        access.rate_limit = server.rate_limit;
        check_access(&server, &access, &definitions, &jira, &mut checker);
        let (problems, warnings) = checker.finish();
        if !problems.is_empty() {
            return Err(invalid(problems));
        }
        Ok(Config {
            source: file.to_owned(),
            server,
            cache,
            backends,
            definitions,
            jira,
            access,
            warnings,
        })
    }

    /// The TTL that applies to a definition.
    pub(crate) fn ttl_of(&self, definition: &DefinitionConfig) -> Duration {
        definition.ttl.unwrap_or(self.cache.ttl)
    }

    /// How a definition's values are cached: its own settings over the `cache`
    /// section's.
    pub(crate) fn policy_of(&self, definition: &DefinitionConfig) -> CachePolicy {
        CachePolicy {
            ttl: self.ttl_of(definition),
            max_stale: definition.max_stale.unwrap_or(self.cache.max_stale),
            refresh_ahead: definition.refresh_ahead.unwrap_or(self.cache.refresh_ahead),
            negative_ttl: definition.negative_ttl.unwrap_or(self.cache.negative_ttl),
        }
    }
}

/// Checks across sections: a TCP listener reachable from other hosts needs caller
/// authentication, and a client's exact names should exist.
fn check_access(
    server: &ServerConfig,
    access: &ClientsConfig,
    definitions: &BTreeMap<String, DefinitionConfig>,
    jira: &JiraConfig,
    checker: &mut Checker<'_>,
) {
    if let Some(addr) = server.tcp
        && !addr.ip().is_loopback()
        && !access.any_token()
        && server
            .tls
            .as_ref()
            .is_none_or(|tls| tls.client_ca_file.is_none())
    {
        checker.problem(
            server.tcp_at,
            "server.tcp",
            format!(
                "`{addr}` is reachable from other hosts, and no caller authentication is configured: give at least one entry of `clients` a `tokens` list (callers then send `authorization: Bearer <token>`), or require client certificates with `server.tls.client_ca_file`, or listen on a loopback address such as `127.0.0.1:{}`",
                addr.port()
            ),
        );
    }
    // The HTTP listener has no TLS, so only bearer tokens authenticate its callers.
    if let Some(http) = &server.http
        && let Some(addr) = http.tcp
        && !addr.ip().is_loopback()
        && !access.any_token()
    {
        checker.problem(
            http.tcp_at,
            "server.http.tcp",
            format!(
                "`{addr}` is reachable from other hosts, and no caller authentication is configured: give at least one entry of `clients` a `tokens` list (callers then send `Authorization: Bearer <token>`), or listen on a loopback address such as `127.0.0.1:{}`",
                addr.port()
            ),
        );
    }
    let client_certificates = server
        .tls
        .as_ref()
        .is_some_and(|tls| tls.client_ca_file.is_some());
    let is_pattern = |name: &str| name.contains(['*', '?', '[']);
    for client in access.clients.iter().flatten() {
        if !client.certificates.is_empty() && !client_certificates {
            checker.problem(
                Location::START,
                format!("clients.{}.certificates", client.name),
                "no caller can present a client certificate: set `server.tls.client_ca_file` (and `server.tcp`) to ask for them",
            );
        }
        for name in &client.definitions {
            if !is_pattern(name) && !definitions.contains_key(name) {
                checker.warn(format!(
                    "client `{}` may read definition `{name}`, which the config does not define",
                    client.name
                ));
            }
        }
        for name in &client.jira_connections {
            if !is_pattern(name) && !jira.connections.contains_key(name) {
                checker.warn(format!(
                    "client `{}` may use Jira connection `{name}`, which the config does not define",
                    client.name
                ));
            }
        }
    }
}

#[cfg(test)]
mod cache_tests;
#[cfg(test)]
mod clients_tests;
#[cfg(test)]
mod jira_network_tests;
#[cfg(test)]
mod plugin_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod server_tests;
#[cfg(test)]
mod sources_tests;
#[cfg(test)]
mod tests;
