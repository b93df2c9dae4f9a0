//! What can go wrong when the daemon builds or checks a connection's credentials.

use crate::resolver::ResolveError;

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
    #[error(
        "Jira connection `{connection}`: cannot find the site's cloud id at `{site}/_edge/tenant_info`, which scoped API tokens need: {reason}"
    )]
    CloudId {
        connection: String,
        site: String,
        reason: String,
    },
}
