//! The `clients` and `audit` sections: who may call the daemon, how each caller is
//! recognised, what each may read, and where the record of who read what goes.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use vaultbridge_backend_core::config::{Checker, Location, Section, Text};

/// Where a bearer token is read from: never the config itself, so the config can be
/// shared and versioned without a credential in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenSource {
    /// A file holding the token (surrounding whitespace ignored), re-read when it changes.
    File(PathBuf),
    /// An environment variable of the daemon, read at start.
    Env(String),
}

impl std::fmt::Display for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "file `{}`", path.display()),
            Self::Env(name) => write!(f, "environment variable `{name}`"),
        }
    }
}

/// A token bucket: `per_second` calls a second on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateLimit {
    pub per_second: std::num::NonZeroU32,
    pub burst: std::num::NonZeroU32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateLimit {
    per_second: Option<Text>,
    burst: Option<Text>,
}

/// `per_second` and `burst` (default: a second's worth of calls), both at least 1.
pub(crate) fn check_rate_limit(
    raw: &RawRateLimit,
    section: &mut Section<'_, '_>,
) -> Option<RateLimit> {
    let count = |value: &Text, field: &str, section: &mut Section<'_, '_>| {
        let text = section.text(value, field)?;
        match text.trim().parse::<std::num::NonZeroU32>() {
            Ok(count) => Some(count),
            Err(_) => {
                section.problem(
                    value,
                    field,
                    format!(
                        "expected a whole number of calls, at least 1, got `{}`",
                        value.value
                    ),
                );
                None
            }
        }
    };
    let Some(per_second) = &raw.per_second else {
        section.section_problem(
            "a rate limit needs `per_second`, the calls a second each caller may make",
        );
        return None;
    };
    let per_second = count(per_second, "per_second", section)?;
    let burst = match &raw.burst {
        Some(burst) => count(burst, "burst", section)?,
        None => per_second,
    };
    Some(RateLimit { per_second, burst })
}

/// One entry of `clients`: the ways a caller is recognised as this client, and what it
/// may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientConfig {
    pub name: String,
    /// Unix-socket callers whose user id (from the kernel) is one of these.
    pub uids: Vec<u32>,
    /// Unix-socket callers whose primary group id is one of these.
    pub gids: Vec<u32>,
    /// Bearer tokens (several, so a token can be rotated without a gap).
    pub tokens: Vec<TokenSource>,
    /// Client-certificate identities (a SAN URI such as a SPIFFE ID, or a DNS name).
    pub certificates: Vec<String>,
    /// Definition names and glob patterns (`*`, `?`, `[...]`) this client may resolve.
    pub definitions: Vec<String>,
    /// Jira connection names and glob patterns this client may use.
    pub jira_connections: Vec<String>,
    /// This client's own limit, instead of `server.rate_limit`.
    pub rate_limit: Option<RateLimit>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuditSink {
    Off,
    /// Log lines under the `vaultbridge::audit` target, beside the daemon's own log.
    Stderr,
    /// A file of JSON lines, created owner-only and appended to.
    File,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuditConfig {
    pub sink: AuditSink,
    pub file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientsConfig {
    /// `None`: no `clients` section, so whoever can reach the daemon may read
    /// everything (the behaviour before access rules existed).
    pub clients: Option<Vec<ClientConfig>>,
    pub audit: AuditConfig,
    /// Each caller's limit unless its client has one: `server.rate_limit`.
    pub rate_limit: Option<RateLimit>,
}

impl ClientsConfig {
    pub(crate) fn any_token(&self) -> bool {
        self.clients
            .iter()
            .flatten()
            .any(|client| !client.tokens.is_empty())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClient {
    #[serde(default)]
    uids: Vec<Text>,
    #[serde(default)]
    gids: Vec<Text>,
    #[serde(default)]
    tokens: Vec<RawToken>,
    #[serde(default)]
    certificates: Vec<Text>,
    #[serde(default)]
    definitions: Vec<Text>,
    #[serde(default)]
    jira_connections: Vec<Text>,
    rate_limit: Option<RawRateLimit>,
}

impl RawClient {
    /// Where the client was written, as near as its fields tell.
    fn at(&self) -> Location {
        let tokens = self
            .tokens
            .iter()
            .flat_map(|token| [&token.file, &token.env])
            .flatten();
        self.uids
            .iter()
            .chain(&self.gids)
            .chain(tokens)
            .chain(&self.certificates)
            .chain(&self.definitions)
            .chain(&self.jira_connections)
            .map(|text| text.at)
            .min_by_key(|at| (at.line, at.column))
            .unwrap_or(Location::START)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawToken {
    file: Option<Text>,
    env: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAudit {
    sink: Option<Text>,
    file: Option<Text>,
}

pub(super) fn check(
    raw_clients: Option<&BTreeMap<String, RawClient>>,
    raw_audit: Option<&RawAudit>,
    checker: &mut Checker<'_>,
) -> ClientsConfig {
    let clients = raw_clients.map(|raw_clients| {
        raw_clients
            .iter()
            .filter_map(|(name, raw)| {
                let mut section = checker.section(format!("clients.{name}"), raw.at());
                check_client(name, raw, &mut section)
            })
            .collect::<Vec<_>>()
    });
    if let Some(raw_clients) = raw_clients
        && raw_clients.is_empty()
    {
        checker.problem(
            Location::START,
            "clients",
            "the section names no client, so no caller could read anything; remove it to let every caller read everything, or add clients",
        );
    }
    let mut audit = AuditConfig {
        sink: if clients.is_some() {
            AuditSink::Stderr
        } else {
            AuditSink::Off
        },
        file: None,
    };
    if let Some(raw) = raw_audit {
        let at = raw
            .sink
            .as_ref()
            .or(raw.file.as_ref())
            .map_or(Location::START, |v| v.at);
        let mut section = checker.section("audit", at);
        check_audit(raw, &mut section, &mut audit);
    }
    ClientsConfig {
        clients,
        audit,
        rate_limit: None,
    }
}

fn check_client(
    name: &str,
    raw: &RawClient,
    section: &mut Section<'_, '_>,
) -> Option<ClientConfig> {
    let mut client = ClientConfig {
        name: name.to_owned(),
        uids: ids(&raw.uids, "uids", section),
        gids: ids(&raw.gids, "gids", section),
        tokens: Vec::new(),
        certificates: raw
            .certificates
            .iter()
            .filter_map(|value| section.text(value, "certificates"))
            .collect(),
        definitions: patterns(&raw.definitions, "definitions", section),
        jira_connections: patterns(&raw.jira_connections, "jira_connections", section),
        rate_limit: None,
    };
    if let Some(raw_limit) = &raw.rate_limit {
        let mut limit_section = section.section("rate_limit", section.at());
        client.rate_limit = check_rate_limit(raw_limit, &mut limit_section);
    }
    for token in &raw.tokens {
        match (&token.file, &token.env) {
            (Some(file), None) => {
                if let Some(path) = section.file_path(file, "tokens.file") {
                    client.tokens.push(TokenSource::File(path));
                }
            }
            (None, Some(env)) => {
                if let Some(variable) = section.text(env, "tokens.env") {
                    client.tokens.push(TokenSource::Env(variable));
                }
            }
            (Some(file), Some(_)) => section.problem(
                file,
                "tokens",
                "a token comes from a `file` or an `env` variable, not both; list them as two tokens",
            ),
            (None, None) => section.section_problem(
                "each entry of `tokens` needs `file` (a path) or `env` (a variable name); a token is never written in the config itself",
            ),
        }
    }
    if raw.uids.is_empty()
        && raw.gids.is_empty()
        && raw.tokens.is_empty()
        && raw.certificates.is_empty()
    {
        section.section_problem(
            "nothing identifies this client: give it `uids` or `gids` (callers on the Unix socket), `tokens` (bearer tokens over TCP) or `certificates` (client-certificate identities over TLS)",
        );
    }
    if raw.definitions.is_empty() && raw.jira_connections.is_empty() {
        section.warn(format!(
            "client `{name}` may read no definition and no Jira connection; list them under `definitions` and `jira_connections`"
        ));
    }
    Some(client)
}

fn ids(values: &[Text], field: &str, section: &mut Section<'_, '_>) -> Vec<u32> {
    values
        .iter()
        .filter_map(|value| {
            let text = section.text(value, field)?;
            match text.trim().parse::<u32>() {
                Ok(id) => Some(id),
                Err(_) => {
                    section.problem(
                        value,
                        field,
                        format!(
                            "expected a numeric id such as `1000`, got `{}`",
                            value.value
                        ),
                    );
                    None
                }
            }
        })
        .collect()
}

fn patterns(values: &[Text], field: &str, section: &mut Section<'_, '_>) -> Vec<String> {
    values
        .iter()
        .filter_map(|value| {
            let text = section.text(value, field)?;
            if let Err(err) = glob::Pattern::new(&text) {
                section.problem(
                    value,
                    field,
                    format!("`{}` is not a valid name pattern: {}", value.value, err.msg),
                );
                return None;
            }
            Some(text)
        })
        .collect()
}

fn check_audit(raw: &RawAudit, section: &mut Section<'_, '_>, audit: &mut AuditConfig) {
    if let Some(value) = &raw.sink
        && let Some(text) = section.text(value, "sink")
    {
        match text.as_str() {
            "off" => audit.sink = AuditSink::Off,
            "stderr" => audit.sink = AuditSink::Stderr,
            "file" => audit.sink = AuditSink::File,
            _ => section.problem(
                value,
                "sink",
                format!("expected `stderr`, `file` or `off`, got `{}`", value.value),
            ),
        }
    }
    if let Some(value) = &raw.file {
        audit.file = section.file_path(value, "file");
        if raw.sink.is_none() {
            audit.sink = AuditSink::File;
        }
    }
    if audit.sink == AuditSink::File && raw.file.is_none() {
        section.section_problem("`sink: file` needs `file`, the path of the audit log");
    }
}
