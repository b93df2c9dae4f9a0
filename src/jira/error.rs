//! What can go wrong when the daemon builds or checks a connection's credentials.

use crate::resolver::ResolveError;
use vaultbridge_backend_core::describe_chain;

#[derive(Debug, thiserror::Error)]
pub enum JiraError {
    #[error("no Jira connection named `{name}`")]
    UnknownConnection { name: String },
    #[error("Jira connection `{connection}`: {source}")]
    Resolve {
        connection: String,
        #[source]
        source: ResolveError,
    },
    #[error("Jira connection `{connection}`: the {what} is not text (not valid UTF-8)")]
    NotText {
        connection: String,
        what: &'static str,
    },
    #[error("Jira connection `{connection}`: cannot build its HTTPS client: {}", describe_chain(.source))]
    HttpClient {
        connection: String,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "Jira connection `{connection}`: cannot find the site's cloud id at `{site}/_edge/tenant_info`, which scoped API tokens need: {source}"
    )]
    CloudId {
        connection: String,
        site: String,
        #[source]
        source: CloudIdError,
    },
}

/// Why a site's `/_edge/tenant_info` gave no cloud id. The request carries no
/// credentials, so these texts cannot hold a token.
#[derive(Debug, thiserror::Error)]
pub enum CloudIdError {
    // Callers see only the text, so it spells out the causes too.
    #[error("{}", super::network::describe(.0))]
    Request(#[source] reqwest::Error),
    #[error("HTTP {0}")]
    Status(reqwest::StatusCode),
    #[error("{0}")]
    Body(#[source] reqwest::Error),
    #[error("the answer has no cloudId")]
    NoCloudId,
}
