//! Checking a connection's credentials against Jira itself.
//!
//! `GET /rest/api/2/myself` cannot be read anonymously, so a 200 proves the
//! credentials; a small project listing then shows what they can see. Answers map to a
//! status and a message that says what to do next.

use super::config::Deployment;
use super::credentials::Credentials;
use super::network::{describe, untrusted_certificate};
use std::time::Duration;

/// Not `Status`: the gRPC service that reports it uses `tonic::Status` beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectionStatus {
    Unknown,
    Connected,
    NeedsReauthorization,
    Failed,
    Unreachable,
}

impl ConnectionStatus {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Unknown => "UNKNOWN",
            Self::Connected => "CONNECTED",
            Self::NeedsReauthorization => "NEEDS_REAUTHORIZATION",
            Self::Failed => "FAILED",
            Self::Unreachable => "UNREACHABLE",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub status: ConnectionStatus,
    pub message: String,
    pub display_name: String,
    pub account_id: String,
    pub project_keys: Vec<String>,
}

impl Outcome {
    fn status(status: ConnectionStatus, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            display_name: String::new(),
            account_id: String::new(),
            project_keys: Vec::new(),
        }
    }
}

/// Longest `Retry-After` honoured before one retry of a rate-limited check.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

pub(crate) async fn verify(http: &reqwest::Client, credentials: &Credentials) -> Outcome {
    let name = &credentials.connection;
    if let (Some(expires), Some(days)) = (credentials.expires_at, credentials.days_left)
        && days < 0
    {
        return Outcome::status(
            ConnectionStatus::NeedsReauthorization,
            format!(
                "the token of `{name}` expired on {expires}: create a new API token, store it in the vault, then verify again"
            ),
        );
    }
    let myself = match get(http, credentials, "/rest/api/2/myself").await {
        Ok(answer) => answer,
        Err(outcome) => return outcome,
    };
    let (status, headers, body) = myself;
    match status {
        200 => {}
        401 => {
            let scoped_hint = if credentials.deployment == Deployment::Cloud {
                " (a scoped API token needs `deployment: cloud_scoped`)"
            } else {
                ""
            };
            return Outcome::status(
                ConnectionStatus::NeedsReauthorization,
                format!(
                    "Jira refused the credentials of `{name}`: the token is wrong, expired or revoked, or the account lost access{scoped_hint}; create a new token, store it in the vault, then verify again"
                ),
            );
        }
        403 if headers
            .get("x-seraph-loginreason")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|reason| reason.contains("AUTHENTICATION_DENIED")) =>
        {
            return Outcome::status(
                ConnectionStatus::Failed,
                format!(
                    "Jira wants a CAPTCHA for the account of `{name}` after failed logins: sign in once in a browser to clear it, then verify again"
                ),
            );
        }
        403 => {
            return Outcome::status(
                ConnectionStatus::Failed,
                format!(
                    "Jira knows the account of `{name}` but refuses it: it may lack Jira product access or a token scope, or an IP allow-list blocks the daemon; a new token will not help, an admin must grant access"
                ),
            );
        }
        404 => {
            return Outcome::status(
                ConnectionStatus::Failed,
                format!(
                    "there is no Jira REST API at `{}`: check the site URL of `{name}` and, on Data Center, its context path (such as /jira)",
                    credentials.base_url
                ),
            );
        }
        500..=599 | 429 => {
            return Outcome::status(
                ConnectionStatus::Unreachable,
                format!(
                    "Jira answered HTTP {status} for `{name}`: it is unavailable or rate-limiting; try again later"
                ),
            );
        }
        other => {
            return Outcome::status(
                ConnectionStatus::Failed,
                format!(
                    "Jira answered HTTP {other} for `{name}`, which vaultbridge does not expect"
                ),
            );
        }
    }
    let account: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let mut outcome = Outcome::status(
        ConnectionStatus::Connected,
        format!("the credentials of `{name}` work"),
    );
    outcome.display_name = account["displayName"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    outcome.account_id = account["accountId"].as_str().unwrap_or_default().to_owned();
    let listing = match credentials.deployment {
        Deployment::DataCenter => "/rest/api/2/project",
        Deployment::Cloud | Deployment::CloudScoped => "/rest/api/2/project/search?maxResults=5",
    };
    if let Ok((200, _, body)) = get(http, credentials, listing).await {
        let projects: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let items = projects["values"]
            .as_array()
            .or_else(|| projects.as_array());
        outcome.project_keys = items
            .into_iter()
            .flatten()
            .filter_map(|project| project["key"].as_str().map(str::to_owned))
            .take(5)
            .collect();
    }
    outcome
}

type Answer = (u16, reqwest::header::HeaderMap, Vec<u8>);

/// One authenticated GET; a 429 is retried once after its `Retry-After`.
async fn get(
    http: &reqwest::Client,
    credentials: &Credentials,
    path: &str,
) -> Result<Answer, Outcome> {
    let url = format!("{}{path}", credentials.base_url);
    let authorization = credentials.authorization.expose_str().unwrap_or_default();
    for attempt in 0..2 {
        let response = http
            .get(&url)
            .header("Authorization", authorization)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|err| {
                // Trying again later cannot fix a certificate the daemon does not trust.
                let status = if untrusted_certificate(&err).is_some() {
                    ConnectionStatus::Failed
                } else {
                    ConnectionStatus::Unreachable
                };
                Outcome::status(
                    status,
                    format!(
                        "cannot reach Jira for `{}` at `{}`: {}",
                        credentials.connection,
                        credentials.base_url,
                        describe(&err)
                    ),
                )
            })?;
        let status = response.status().as_u16();
        if status == 429 && attempt == 0 {
            let wait = response
                .headers()
                .get("retry-after")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<u64>().ok())
                .map_or(Duration::from_secs(1), Duration::from_secs)
                .min(MAX_RETRY_AFTER);
            tokio::time::sleep(wait).await;
            continue;
        }
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map(|bytes| bytes.to_vec())
            .unwrap_or_default();
        return Ok((status, headers, body));
    }
    Err(Outcome::status(
        ConnectionStatus::Unreachable,
        format!(
            "Jira kept rate-limiting the checks of `{}`; try again later",
            credentials.connection
        ),
    ))
}
