//! `vaultbridge jira`: verify connections, and credentials for a shell step.

use super::{CredsFormat, EXIT_FAILURE, JiraCommand, daemon_channel, print_rows, within};
use crate::client::Credentials;
use std::io::Write;
use std::process::ExitCode;

pub async fn jira(command: JiraCommand, credentials: &Credentials) -> ExitCode {
    let (timeout, addr) = match &command {
        JiraCommand::Verify { timeout, addr, .. } | JiraCommand::Creds { timeout, addr, .. } => {
            (*timeout, addr.clone())
        }
    };
    let run = async move {
        match command {
            JiraCommand::Verify {
                connections, addr, ..
            } => jira_verify(connections, addr, credentials).await,
            JiraCommand::Creds {
                connection,
                format: CredsFormat::Env,
                addr,
                ..
            } => jira_creds_env(connection, addr, credentials).await,
        }
    };
    within(timeout, addr.as_deref(), run).await
}

async fn jira_verify(
    connections: Vec<String>,
    addr: Option<String>,
    credentials: &Credentials,
) -> ExitCode {
    use crate::proto::v1::{
        ConnectionStatus, JiraDeployment, ListConnectionsRequest, VerifyConnectionRequest,
        jira_client::JiraClient,
    };
    let channel = match daemon_channel(addr.as_deref(), credentials).await {
        Ok(channel) => channel,
        Err(code) => return code,
    };
    let mut jira = JiraClient::new(channel);
    let listed = match jira.list_connections(ListConnectionsRequest {}).await {
        Ok(response) => response.into_inner().connections,
        Err(status) => {
            eprintln!("vaultbridge: {:?}: {}", status.code(), status.message());
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let names: Vec<String> = if connections.is_empty() {
        listed
            .iter()
            .map(|connection| connection.name.clone())
            .collect()
    } else {
        connections
    };
    let mut rows = vec![
        [
            "CONNECTION",
            "DEPLOYMENT",
            "STATUS",
            "ACCOUNT",
            "PROJECTS",
            "EXPIRES",
        ]
        .map(str::to_owned),
    ];
    let mut details = Vec::new();
    let mut all_connected = !names.is_empty();
    for name in names {
        let known = listed.iter().find(|connection| connection.name == name);
        let deployment = known
            .and_then(|c| JiraDeployment::try_from(c.deployment).ok())
            .map_or("?", |d| match d {
                JiraDeployment::Cloud => "cloud",
                JiraDeployment::CloudScoped => "cloud_scoped",
                JiraDeployment::DataCenter => "data_center",
                JiraDeployment::Unspecified => "?",
            });
        let expires = known
            .and_then(|c| c.expires_at.clone())
            .unwrap_or_else(|| "-".to_owned());
        match jira
            .verify_connection(VerifyConnectionRequest {
                connection: name.clone(),
            })
            .await
        {
            Ok(response) => {
                let state = response.into_inner().state.unwrap_or_default();
                let status = ConnectionStatus::try_from(state.status)
                    .unwrap_or(ConnectionStatus::Unspecified);
                if status != ConnectionStatus::Connected {
                    all_connected = false;
                    details.push(format!("{name}: {}", state.message));
                }
                let status = status
                    .as_str_name()
                    .trim_start_matches("CONNECTION_STATUS_")
                    .to_owned();
                let account = if state.display_name.is_empty() {
                    "-".to_owned()
                } else {
                    state.display_name
                };
                let projects = if state.project_keys.is_empty() {
                    "-".to_owned()
                } else {
                    state.project_keys.join(",")
                };
                rows.push([
                    name,
                    deployment.to_owned(),
                    status,
                    account,
                    projects,
                    expires,
                ]);
            }
            Err(status) => {
                all_connected = false;
                details.push(format!("{name}: {}", status.message()));
                rows.push([
                    name,
                    deployment.to_owned(),
                    "ERROR".to_owned(),
                    "-".to_owned(),
                    "-".to_owned(),
                    expires,
                ]);
            }
        }
    }
    print_rows(&rows);
    for detail in details {
        eprintln!("vaultbridge: {detail}");
    }
    if all_connected {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    }
}

async fn jira_creds_env(
    connection: String,
    addr: Option<String>,
    credentials: &Credentials,
) -> ExitCode {
    use crate::proto::v1::{GetCredentialsRequest, jira_client::JiraClient};
    let channel = match daemon_channel(addr.as_deref(), credentials).await {
        Ok(channel) => channel,
        Err(code) => return code,
    };
    let credentials = match JiraClient::new(channel)
        .get_credentials(GetCredentialsRequest { connection })
        .await
    {
        Ok(response) => response.into_inner(),
        Err(status) => {
            eprintln!("vaultbridge: {:?}: {}", status.code(), status.message());
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    for warning in &credentials.warnings {
        eprintln!("vaultbridge: warning: {warning}");
    }
    let lines = [
        ("JIRA_URL", credentials.base_url.as_str()),
        ("JIRA_EMAIL", credentials.username.as_str()),
        ("JIRA_API_TOKEN", credentials.token.as_str()),
        ("JIRA_PROJECT", credentials.project.as_str()),
    ];
    let mut out = zeroize::Zeroizing::new(String::new());
    for (name, value) in lines {
        out.push_str(name);
        out.push('=');
        out.push_str(&shell_quote(value));
        out.push('\n');
    }
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("vaultbridge: cannot write to stdout: {err}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Single-quotes a value for POSIX shells: inside single quotes only `'` needs care.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod quoting_tests {
    use super::shell_quote;

    #[test]
    fn values_are_single_quoted_for_the_shell() {
        assert_eq!(shell_quote("plain"), "'plain'");
        assert_eq!(shell_quote("it's $HOME `x`"), r"'it'\''s $HOME `x`'");
        assert_eq!(shell_quote(""), "''");
    }
}
