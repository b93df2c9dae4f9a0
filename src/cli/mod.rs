//! The `vaultbridge` command line: `serve`, `get`, `check`.
//!
//! Exit codes: 0 success; 1 a failure (a resolve error, an invalid config, a failed
//! check, a daemon not serving); 2 bad usage; 3 `get` or `health` could not reach the
//! daemon, or it did not answer within `--timeout`.

use crate::client::{self, Address, Credentials};
use crate::config::{Config, ConfigError, ProcessVars};
use crate::proto::v1::ResolveRequest;
use crate::proto::v1::secrets_client::SecretsClient;
use crate::registry;
use crate::resolver::Resolver;
use crate::server;
use crate::status::code_and_message;
use clap::{Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use vaultbridge_backend_core::describe_chain;

pub const EXIT_FAILURE: u8 = 1;
/// Bad usage: clap's own code for a bad argument, and ours for credentials that cannot
/// be used (an unreadable token file, `https://` without `--tls-ca`).
pub(crate) const EXIT_USAGE: u8 = 2;
pub(crate) const EXIT_UNREACHABLE: u8 = 3;

mod jira;
pub use jira::jira;

#[derive(Debug, Parser)]
#[command(
    name = "vaultbridge",
    version,
    about = "Resolves named secret definitions and serves them over gRPC"
)]
pub struct Cli {
    /// Log filter: a level (error, warn, info, debug, trace) or tracing directives
    /// such as `vaultbridge=debug,h2=info`. Logs go to stderr and never hold values.
    #[arg(long, global = true, env = "VAULTBRIDGE_LOG", default_value = "info")]
    pub log: String,
    #[arg(long, global = true, env = "VAULTBRIDGE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub credentials: Credentials,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon. Without --config it runs the embedded local-dev config
    /// (config.example.yaml): the file backend over examples/secrets.dev.yaml.
    Serve {
        #[arg(long, env = "VAULTBRIDGE_CONFIG")]
        config: Option<PathBuf>,
        /// Reload the config when the file's content changes (an edit, a rename over
        /// it, a Kubernetes ConfigMap update), as SIGHUP does.
        #[arg(long)]
        watch_config: bool,
    },
    /// Ask the running daemon to re-read and apply its config file; prints what changed,
    /// or every problem of an invalid config (which the daemon does not apply). Only
    /// the daemon's own user or root may, over the Unix socket.
    Reload {
        #[arg(long, env = "VAULTBRIDGE_ADDR")]
        addr: Option<String>,
        /// Give up when the daemon has not answered within this.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Print one secret's value from a running daemon, with no newline added.
    Get {
        name: String,
        /// `unix:/path`, `/path`, `host:port` or `http://host:port`. Default: the
        /// example config's socket, `$VAULTBRIDGE_SOCKET` or /tmp/vaultbridge.sock.
        #[arg(long, env = "VAULTBRIDGE_ADDR")]
        addr: Option<String>,
        /// End the value with a newline.
        #[arg(long)]
        newline: bool,
        /// Give up when the daemon has not answered within this (`500ms`, `10s`, `1m`).
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Jira credentials from a running daemon.
    Jira {
        #[command(subcommand)]
        command: JiraCommand,
    },
    /// Ask a running daemon's health service; exit 0 when it is SERVING. For exec
    /// probes of a sidecar that listens only on a Unix socket.
    Health {
        #[arg(long, env = "VAULTBRIDGE_ADDR")]
        addr: Option<String>,
        /// Give up when the daemon has not answered within this.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Out-of-process backend plugins.
    Plugin {
        #[command(subcommand)]
        command: crate::plugin_check::PluginCommand,
    },
    /// Validate a config, and optionally resolve every definition; prints a table
    /// of definition, backend and status (never values).
    Check {
        #[arg(long, env = "VAULTBRIDGE_CONFIG")]
        config: Option<PathBuf>,
        /// Also resolve every definition through its backend.
        #[arg(long)]
        resolve: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum JiraCommand {
    /// Verify connections against Jira and print one row each (name, deployment,
    /// status, account, projects, expiry); exits non-zero unless all are CONNECTED.
    Verify {
        /// Connections to verify; all of them when none is named.
        connections: Vec<String>,
        #[arg(long, env = "VAULTBRIDGE_ADDR")]
        addr: Option<String>,
        /// Give up when the checks have not finished within this (they call Jira).
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Print a connection's credentials for a shell step: `eval "$(vaultbridge jira
    /// creds jira-prod)"` sets JIRA_URL, JIRA_EMAIL, JIRA_API_TOKEN and JIRA_PROJECT.
    /// Warnings (an expiring token, a pasted `Bearer ` prefix) go to stderr.
    Creds {
        connection: String,
        #[arg(long, value_enum, default_value_t = CredsFormat::Env)]
        format: CredsFormat,
        #[arg(long, env = "VAULTBRIDGE_ADDR")]
        addr: Option<String>,
        /// Give up when the daemon has not answered within this.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CredsFormat {
    /// `NAME='value'` lines, quoted for POSIX shells.
    Env,
}

pub fn init_logging(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|err| {
        eprintln!("vaultbridge: invalid --log filter ({err}); using `info`");
        tracing_subscriber::EnvFilter::new("info")
    });
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

pub(crate) fn load_config(path: Option<&PathBuf>) -> Result<Config, ConfigError> {
    match path {
        Some(path) => Config::load(path, &ProcessVars),
        None => Config::embedded_default(&ProcessVars),
    }
}

pub async fn serve(path: Option<PathBuf>, watch_config: bool) -> ExitCode {
    let config = match load_config(path.as_ref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("vaultbridge: invalid config:\n{err}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let source = server::ConfigSource {
        path,
        watch: watch_config,
    };
    match server::serve(config, source, server::termination_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            eprintln!("vaultbridge: {err}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Runs a command that talks to the daemon, giving up after `timeout`: a daemon that
/// accepts connections but never answers (hung, or its connection slots held by
/// someone else) must not hang a shell step or a probe forever.
pub async fn within(
    timeout: Duration,
    addr: Option<&str>,
    command: impl std::future::Future<Output = ExitCode>,
) -> ExitCode {
    match tokio::time::timeout(timeout, command).await {
        Ok(code) => code,
        Err(_) => {
            let address = addr.map_or_else(Address::default_local, Address::parse);
            eprintln!(
                "vaultbridge: no answer from the daemon at {address} within {}; `--timeout` waits longer",
                humantime::format_duration(timeout)
            );
            ExitCode::from(EXIT_UNREACHABLE)
        }
    }
}

pub async fn get(
    name: String,
    addr: Option<String>,
    newline: bool,
    credentials: &Credentials,
) -> ExitCode {
    let mut client = match daemon_channel(addr.as_deref(), credentials).await {
        Ok(channel) => SecretsClient::new(channel),
        Err(code) => return code,
    };
    match client
        .resolve(ResolveRequest {
            name,
            ..Default::default()
        })
        .await
    {
        Ok(response) => {
            let Some(secret) = response.into_inner().secret else {
                eprintln!("vaultbridge: the daemon answered without a secret");
                return ExitCode::from(EXIT_FAILURE);
            };
            let mut stdout = std::io::stdout().lock();
            let written = stdout
                .write_all(&secret.value)
                .and_then(|()| {
                    if newline {
                        stdout.write_all(b"\n")
                    } else {
                        Ok(())
                    }
                })
                .and_then(|()| stdout.flush());
            drop(secret);
            match written {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("vaultbridge: cannot write the value to stdout: {err}");
                    ExitCode::from(EXIT_FAILURE)
                }
            }
        }
        Err(status) => {
            eprintln!("vaultbridge: {:?}: {}", status.code(), status.message());
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Left-aligned columns, two spaces apart.
pub(super) fn print_rows<const N: usize>(rows: &[[String; N]]) {
    let mut widths = [0usize; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut stdout = std::io::stdout().lock();
    for row in rows {
        let mut line = String::new();
        for (index, (cell, width)) in row.iter().zip(widths).enumerate() {
            if index + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  "));
            }
        }
        // A closed stdout (`| head`) is not worth failing over.
        let _ = writeln!(stdout, "{}", line.trim_end());
    }
}

/// A channel to the daemon at `addr` (default: the example config's socket) that
/// sends `credentials`, or the exit code after saying on stderr what went wrong.
pub(super) async fn daemon_channel(
    addr: Option<&str>,
    credentials: &Credentials,
) -> Result<client::DaemonChannel, ExitCode> {
    let address = addr.map_or_else(Address::default_local, Address::parse);
    client::authenticated_channel(&address, credentials)
        .await
        .map_err(|err| match err {
            client::CredentialsError::Transport(err) => {
                eprintln!(
                    "vaultbridge: cannot reach the daemon at {address}: {}; is `vaultbridge serve` running?",
                    describe_chain(&err)
                );
                ExitCode::from(EXIT_UNREACHABLE)
            }
            err => {
                eprintln!("vaultbridge: {}", describe_chain(&err));
                ExitCode::from(EXIT_USAGE)
            }
        })
}

pub async fn reload(addr: Option<String>, credentials: &Credentials) -> ExitCode {
    use crate::proto::v1::{ReloadOutcome, ReloadRequest, admin_client::AdminClient};
    let channel = match daemon_channel(addr.as_deref(), credentials).await {
        Ok(channel) => channel,
        Err(code) => return code,
    };
    let answer = match AdminClient::new(channel).reload(ReloadRequest {}).await {
        Ok(answer) => answer.into_inner(),
        Err(status) => {
            eprintln!("vaultbridge: {:?}: {}", status.code(), status.message());
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    for warning in &answer.warnings {
        eprintln!("vaultbridge: warning: {warning}");
    }
    if answer.outcome() != ReloadOutcome::Applied {
        eprintln!(
            "vaultbridge: the daemon rejected the config and keeps serving the previous one:"
        );
        for problem in &answer.problems {
            eprintln!("{problem}");
        }
        return ExitCode::from(EXIT_FAILURE);
    }
    let summary = answer.summary.unwrap_or_default();
    let _ = writeln!(
        std::io::stdout(),
        "reloaded (generation {}): definitions {} added, {} removed, {} changed, {} kept their cache; backends {} kept, {} built, {} removed",
        summary.generation,
        summary.definitions_added,
        summary.definitions_removed,
        summary.definitions_changed,
        summary.definitions_kept,
        summary.backends_kept,
        summary.backends_built,
        summary.backends_removed,
    );
    ExitCode::SUCCESS
}

pub async fn health(addr: Option<String>, credentials: &Credentials) -> ExitCode {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let channel = match daemon_channel(addr.as_deref(), credentials).await {
        Ok(channel) => channel,
        Err(code) => return code,
    };
    let request = HealthCheckRequest {
        service: String::new(),
    };
    match HealthClient::new(channel).check(request).await {
        Ok(answer) if answer.get_ref().status == ServingStatus::Serving as i32 => {
            let _ = writeln!(std::io::stdout(), "SERVING");
            ExitCode::SUCCESS
        }
        Ok(answer) => {
            let status = ServingStatus::try_from(answer.get_ref().status)
                .map_or("UNKNOWN", |status| status.as_str_name());
            let _ = writeln!(std::io::stdout(), "{status}");
            ExitCode::from(EXIT_FAILURE)
        }
        Err(status) => {
            eprintln!("vaultbridge: {:?}: {}", status.code(), status.message());
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

pub async fn check(config: Option<PathBuf>, resolve: bool) -> ExitCode {
    let config = match load_config(config.as_ref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("vaultbridge: invalid config:\n{err}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    for warning in &config.warnings {
        eprintln!("vaultbridge: warning: {warning}");
    }
    if config.definitions.is_empty() {
        eprintln!(
            "vaultbridge: {}: no definitions: a daemon serving this config could resolve nothing; add a `definitions` section",
            config.source
        );
        return ExitCode::from(EXIT_FAILURE);
    }
    let backends = match registry::build_all(&config.backends).await {
        Ok(backends) => backends,
        Err(err) => {
            eprintln!("vaultbridge: {err}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let resolver = match Resolver::new(&config, &backends) {
        Ok(resolver) => resolver,
        Err(err) => {
            eprintln!("vaultbridge: {err}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let mut rows = vec![[
        "DEFINITION".to_owned(),
        "BACKEND".to_owned(),
        "STATUS".to_owned(),
    ]];
    let mut failures = 0;
    for definition in resolver.definitions() {
        let backend = definition
            .sources
            .iter()
            .map(|source| format!("{} ({})", source.backend_name, source.backend.kind()))
            .collect::<Vec<_>>()
            .join(", then ");
        let status = if resolve {
            match resolver.resolve(&definition.name).await {
                Ok(resolved) => {
                    let mut notes = Vec::new();
                    if resolved.secret.source > 0 {
                        notes.push(format!(
                            "from `sources[{}]`, backend `{}`",
                            resolved.secret.source,
                            resolved.source().backend_name
                        ));
                    }
                    if resolved.secret.trimmed {
                        notes.push("whitespace trimmed".to_owned());
                    }
                    if notes.is_empty() {
                        "ok".to_owned()
                    } else {
                        format!("ok ({})", notes.join(", "))
                    }
                }
                Err(err) => {
                    failures += 1;
                    let (code, message) = code_and_message(&err);
                    format!("{code:?}: {message}")
                }
            }
        } else {
            "valid".to_owned()
        };
        rows.push([definition.name.to_string(), backend, status]);
    }
    print_rows(&rows);
    eprintln!(
        "{}: {} definitions, {} backends{}",
        config.source,
        config.definitions.len(),
        config.backends.len(),
        if resolve {
            format!(", {failures} failed to resolve")
        } else {
            String::new()
        }
    );
    if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    }
}
