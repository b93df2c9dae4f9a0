//! The `jira` section of the config: connections, with their site URLs normalised the
//! way pasted URLs need (scheme added, `/rest/...` and trailing slashes removed), and
//! the checks that turn the section as written into them.

use super::network::{self, Network};
use crate::names;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use vaultbridge_backend_core::config::{Checker, Location, Section, Text};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deployment {
    /// Jira Cloud: basic auth with email and API token, on the site URL.
    Cloud,
    /// Jira Cloud with a scoped API token, through the API gateway.
    CloudScoped,
    /// Jira Server / Data Center: a personal access token as a bearer token.
    DataCenter,
}

impl Deployment {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Cloud => "cloud",
            Self::CloudScoped => "cloud_scoped",
            Self::DataCenter => "data_center",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "cloud" => Some(Self::Cloud),
            "cloud_scoped" => Some(Self::CloudScoped),
            "data_center" => Some(Self::DataCenter),
            _ => None,
        }
    }

    pub(crate) fn uses_email(self) -> bool {
        !matches!(self, Self::DataCenter)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EmailSource {
    Literal(String),
    Definition(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConnectionConfig {
    pub site_url: String,
    pub deployment: Deployment,
    pub email: Option<EmailSource>,
    pub token_definition: String,
    pub expires_at: Option<time::Date>,
    pub project: Option<String>,
    pub network: Network,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JiraConfig {
    /// Warn this long before a token's `expires_at`.
    pub expiry_warning: Duration,
    /// Refusals in a row before a connection is FAILED.
    pub failure_threshold: u32,
    pub connections: BTreeMap<String, ConnectionConfig>,
}

impl Default for JiraConfig {
    fn default() -> Self {
        Self {
            expiry_warning: Duration::from_secs(7 * 86_400),
            failure_threshold: 3,
            connections: BTreeMap::new(),
        }
    }
}

/// A site URL as pasted, made into the base URL Jira expects, with a note for each fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NormalisedUrl {
    pub url: String,
    pub host: String,
    pub fixes: Vec<String>,
}

pub(crate) fn normalise_site_url(raw: &str) -> Result<NormalisedUrl, String> {
    let mut fixes = Vec::new();
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err("expected the Jira site URL, e.g. https://example.atlassian.net".to_owned());
    }
    // A pasted URL picks up tabs, NULs and line breaks inside it too; none belongs in a
    // URL, and one left at the end of the path would survive the trailing-slash fix.
    if let Some((at, found)) = trimmed
        .char_indices()
        .find(|(_, c)| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "the site URL has {found:?} at byte {at}; a URL has no spaces or control characters"
        ));
    }
    let (scheme, rest) = match trimmed.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => {
            fixes.push("added `https://` in front of the site URL".to_owned());
            ("https".to_owned(), trimmed)
        }
    };
    if scheme != "https" && scheme != "http" {
        return Err(format!("expected an https:// URL, got a `{scheme}://` one"));
    }
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains(['@', ' ', '?', '#']) {
        return Err(format!("`{trimmed}` has no usable host name"));
    }
    let host = match authority.rsplit_once(':') {
        Some((_, "")) => return Err(format!("`{trimmed}` has an empty port after `:`")),
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    };
    // `https:/host` (one slash) and `https:host` leave a colon in the host name; only a
    // bracketed IPv6 address has one.
    if host.is_empty() || (host.contains(':') && !(host.starts_with('[') && host.ends_with(']'))) {
        return Err(format!("`{trimmed}` has no usable host name"));
    }
    let host = host.to_ascii_lowercase();
    let mut path = path.split(['?', '#']).next().unwrap_or_default().to_owned();
    if let Some(at) = path
        .find("/rest/")
        .or_else(|| path.ends_with("/rest").then(|| path.len() - 5))
    {
        path.truncate(at);
        fixes.push(
            "removed the REST API path from the site URL (vaultbridge adds it per call)".to_owned(),
        );
    }
    if path.ends_with('/') {
        path = path.trim_end_matches('/').to_owned();
        fixes.push("removed the trailing slash from the site URL".to_owned());
    }
    let cloud_host = host.ends_with(".atlassian.net");
    if scheme == "http" {
        if cloud_host {
            return Err("Jira Cloud (*.atlassian.net) only answers over https://".to_owned());
        }
        fixes.push("the site URL uses http://: the token travels unencrypted; use https:// unless a TLS proxy sits in front".to_owned());
    }
    Ok(NormalisedUrl {
        url: format!("{scheme}://{authority}{path}"),
        host,
        fixes,
    })
}

/// The host of the API gateway that scoped API tokens are sent to.
pub(crate) const GATEWAY_HOST: &str = "api.atlassian.com";

pub(crate) fn default_deployment(host: &str) -> Deployment {
    if host.ends_with(".atlassian.net") {
        Deployment::Cloud
    } else {
        Deployment::DataCenter
    }
}

pub(crate) fn parse_date(text: &str) -> Option<time::Date> {
    time::Date::parse(
        text.trim(),
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()
}

/// A cheap check that catches display names and typos, not a full address parser.
pub(crate) fn looks_like_email(text: &str) -> bool {
    match text.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !text.contains(char::is_whitespace)
        }
        None => false,
    }
}

// ---- as written, and checked ---------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJira {
    expiry_warning: Option<Text>,
    failure_threshold: Option<Text>,
    #[serde(default)]
    connections: BTreeMap<String, RawConnection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnection {
    url: Text,
    deployment: Option<Text>,
    email: Option<Text>,
    email_definition: Option<Text>,
    token: Text,
    expires_at: Option<Text>,
    project: Option<Text>,
    ca_file: Option<Text>,
    resolve: Option<BTreeMap<String, Text>>,
}

/// Checks the `jira` section. `definitions` are the configured definition names, which
/// `token` and `email_definition` must name.
pub(crate) fn check(raw: &RawJira, definitions: &[&str], checker: &mut Checker<'_>) -> JiraConfig {
    let mut jira = JiraConfig::default();
    let mut section = checker.section("jira", Location::START);
    if let Some(value) = &raw.expiry_warning
        && let Some(warning) = section.duration(value, "expiry_warning")
    {
        jira.expiry_warning = warning;
    }
    if let Some(value) = &raw.failure_threshold
        && let Some(text) = section.text(value, "failure_threshold")
    {
        match text.trim().parse::<u32>() {
            Ok(threshold @ 1..=100) => jira.failure_threshold = threshold,
            _ => section.expected(
                value,
                "failure_threshold",
                "a number of failures from 1 to 100",
            ),
        }
    }
    for (name, raw) in &raw.connections {
        let mut section = checker.section(format!("jira.connections.{name}"), raw.url.at);
        if let Some(connection) = check_connection(name, raw, definitions, &mut section) {
            jira.connections.insert(name.clone(), connection);
        }
    }
    jira
}

fn check_connection(
    name: &str,
    raw: &RawConnection,
    definitions: &[&str],
    section: &mut Section<'_, '_>,
) -> Option<ConnectionConfig> {
    if let Err(err) = names::validate(name) {
        section.problem(&raw.url, "", err.describe("connection"));
    }
    let url_text = section.text(&raw.url, "url")?;
    let site = match normalise_site_url(&url_text) {
        Ok(site) => site,
        Err(message) => {
            section.problem(&raw.url, "url", message);
            return None;
        }
    };
    for fix in &site.fixes {
        section.warn(format!(
            "Jira connection `{name}`: {fix}; now `{}`",
            site.url
        ));
    }
    let deployment = match &raw.deployment {
        Some(value) => {
            let text = section.text(value, "deployment")?;
            let Some(deployment) = Deployment::parse(&text) else {
                section.problem(
                    value,
                    "deployment",
                    format!(
                        "unknown deployment `{text}`; expected cloud, cloud_scoped or data_center"
                    ),
                );
                return None;
            };
            deployment
        }
        None => default_deployment(&site.host),
    };
    let email = email(raw, definitions, section);
    match (&email, deployment.uses_email()) {
        (None, true) => section.problem(
            &raw.url,
            "",
            format!(
                "a `{}` connection needs the account's email address: set `email` (or `email_definition`)",
                deployment.name()
            ),
        ),
        (Some(_), false) => {
            let at = raw
                .email
                .as_ref()
                .or(raw.email_definition.as_ref())
                .unwrap_or(&raw.url);
            section.problem(
                at,
                "email",
                "a `data_center` connection authenticates with a personal access token alone; remove the email",
            );
        }
        (Some(EmailSource::Literal(address)), true) if !looks_like_email(address) => {
            section.warn(format!(
                "Jira connection `{name}`: the email does not look like an email address; Jira Cloud wants the account's email, not its display name"
            ));
        }
        _ => {}
    }
    let token_definition = section.text(&raw.token, "token")?;
    if !definitions.contains(&token_definition.as_str()) {
        section.problem(
            &raw.token,
            "token",
            format!(
                "`token` names a secret definition, and there is none named `{token_definition}`; definitions: {}",
                if definitions.is_empty() {
                    "none".to_owned()
                } else {
                    definitions.join(", ")
                }
            ),
        );
    }
    let expires_at = match &raw.expires_at {
        Some(value) => match section.text(value, "expires_at").as_deref().map(parse_date) {
            Some(Some(date)) => Some(date),
            Some(None) => {
                section.problem(
                    value,
                    "expires_at",
                    "expected a date as YYYY-MM-DD, e.g. 2027-01-15",
                );
                None
            }
            None => None,
        },
        None => None,
    };
    let project = section.optional_text(raw.project.as_ref(), "project");
    let network = check_network(raw, &site.host, deployment, section);
    Some(ConnectionConfig {
        site_url: site.url,
        deployment,
        email,
        token_definition,
        expires_at,
        project,
        network,
    })
}

/// `ca_file` and `resolve`. A `resolve` host the connection never calls is refused: a
/// typo there would silently leave the name to DNS.
fn check_network(
    raw: &RawConnection,
    site_host: &str,
    deployment: Deployment,
    section: &mut Section<'_, '_>,
) -> Network {
    let mut network = Network::default();
    if let Some(value) = &raw.ca_file
        && let Some(path) = section.file_path(value, "ca_file")
    {
        match network::read_ca_file(&path) {
            Ok(roots) => {
                network.extra_roots = roots;
                network.ca_file = Some(path);
            }
            Err(message) => section.problem(value, "ca_file", message),
        }
    }
    let mut called = vec![site_host.to_owned()];
    if deployment == Deployment::CloudScoped {
        called.push(GATEWAY_HOST.to_owned());
    }
    for (host, value) in raw.resolve.iter().flatten() {
        let field = format!("resolve.{host}");
        let Some(text) = section.text(value, &field) else {
            continue;
        };
        match network::resolve_entry(host, &text) {
            Ok((host, _)) if !called.contains(&host) => section.problem(
                value,
                &field,
                format!(
                    "this connection never calls `{host}`; it calls {}",
                    called
                        .iter()
                        .map(|host| format!("`{host}`"))
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
            ),
            Ok(entry) => network.resolve.push(entry),
            Err(message) => section.problem(value, &field, message),
        }
    }
    network
}

fn email(
    raw: &RawConnection,
    definitions: &[&str],
    section: &mut Section<'_, '_>,
) -> Option<EmailSource> {
    match (&raw.email, &raw.email_definition) {
        (Some(_), Some(value)) => {
            section.problem(
                value,
                "email_definition",
                "set `email` or `email_definition`, not both",
            );
            None
        }
        (Some(value), None) => section.text(value, "email").map(EmailSource::Literal),
        (None, Some(value)) => {
            let definition = section.text(value, "email_definition")?;
            if !definitions.contains(&definition.as_str()) {
                section.problem(
                    value,
                    "email_definition",
                    format!("no definition named `{definition}`"),
                );
            }
            Some(EmailSource::Definition(definition))
        }
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(raw: &str) -> NormalisedUrl {
        normalise_site_url(raw).unwrap_or_else(|err| panic!("{raw}: {err}"))
    }

    #[test]
    fn a_clean_cloud_url_is_kept_without_notes() {
        let normalised = url("https://example.atlassian.net");
        assert_eq!(normalised.url, "https://example.atlassian.net");
        assert!(normalised.fixes.is_empty());
        assert_eq!(default_deployment(&normalised.host), Deployment::Cloud);
    }

    #[test]
    fn scheme_rest_path_and_trailing_slashes_are_fixed_with_a_note_each() {
        let normalised = url("example.atlassian.net/rest/api/2/");
        assert_eq!(normalised.url, "https://example.atlassian.net");
        assert_eq!(normalised.fixes.len(), 2, "{:?}", normalised.fixes);
        let normalised = url("https://example.atlassian.net//");
        assert_eq!(normalised.url, "https://example.atlassian.net");
        assert_eq!(normalised.fixes.len(), 1);
        let normalised = url("https://example.atlassian.net/rest");
        assert_eq!(normalised.url, "https://example.atlassian.net");
    }

    #[test]
    fn a_data_center_context_path_and_port_are_kept() {
        let normalised = url("https://jira.corp.example:8443/jira/rest/api/2/myself");
        assert_eq!(normalised.url, "https://jira.corp.example:8443/jira");
        assert_eq!(normalised.host, "jira.corp.example");
        assert_eq!(default_deployment(&normalised.host), Deployment::DataCenter);
    }

    #[test]
    fn http_is_refused_for_cloud_and_warned_about_elsewhere() {
        let err = normalise_site_url("http://example.atlassian.net").unwrap_err();
        assert!(err.contains("only answers over https"), "{err}");
        let normalised = url("http://jira.internal:8080");
        assert!(
            normalised.fixes[0].contains("unencrypted"),
            "{:?}",
            normalised.fixes
        );
        assert!(normalise_site_url("ftp://x").is_err());
        assert!(normalise_site_url("  ").is_err());
    }

    /// Found by the `jira_url` fuzz target: `https:/` with one slash became the host
    /// `https`, and a NUL or a space before a trailing slash stayed in the URL.
    #[test]
    fn mistyped_schemes_empty_ports_and_control_characters_are_refused() {
        let err = normalise_site_url("https:/example.atlassian.net").unwrap_err();
        assert!(err.contains("empty port"), "{err}");
        let err = normalise_site_url("https:example.atlassian.net").unwrap_err();
        assert!(err.contains("no usable host name"), "{err}");
        let err = normalise_site_url("https:/\0)/example\0)ian.net/\0 /").unwrap_err();
        assert!(err.contains("'\\0' at byte 7"), "{err}");
        let err = normalise_site_url("https://jira.example/ctx /").unwrap_err();
        assert!(err.contains("' ' at byte 24"), "{err}");
        assert_eq!(
            url("https://[::1]:8443/jira/").url,
            "https://[::1]:8443/jira"
        );
        assert_eq!(url("[::1]").host, "[::1]");
    }

    #[test]
    fn dates_and_emails() {
        assert_eq!(
            parse_date("2027-01-15"),
            Some(time::macros::date!(2027 - 01 - 15))
        );
        assert_eq!(parse_date("15/01/2027"), None);
        assert!(looks_like_email("dev@example.com"));
        assert!(!looks_like_email("Dev Person"));
        assert!(!looks_like_email("dev@localhost"));
    }
}
